"""Orchestration: plan lanes, measure them, record as measured. ``run_lanes`` is the entry point;
it takes the run's ``config.run.RunConfig``."""

from lanebench.orchestration.pipeline import RunOutcome, RunPlan, plan_run, run_lanes

__all__ = ["RunOutcome", "RunPlan", "plan_run", "run_lanes"]
