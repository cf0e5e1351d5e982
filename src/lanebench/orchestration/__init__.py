"""Orchestration: plan lanes, measure them, record as measured. ``run_lanes`` is the entry point."""

from lanebench.orchestration.pipeline import RunOutcome, RunPlan, plan_run, run_lanes
from lanebench.orchestration.plan import RunOptions

__all__ = ["RunOptions", "RunOutcome", "RunPlan", "plan_run", "run_lanes"]
