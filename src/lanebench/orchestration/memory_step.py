"""Memory per lane: the estimate from the GGUF (fit before start) and the measurement while
a llama.cpp lane's job runs (see ``lanebench.memory``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lanebench.engines.base import Endpoint, LanePlan
from lanebench.errors import BadInput, LanebenchError
from lanebench.lanes import cap_lines
from lanebench.memory.collect import memory_record
from lanebench.memory.estimate import LaneEstimate, estimate_lane
from lanebench.memory.fit import Available, available, fit_problem
from lanebench.memory.gpu import gpu_mib_by_pid
from lanebench.memory.proc import RssSampler
from lanebench.records import LaneResult


def plan_estimate(plan: LanePlan) -> LaneEstimate | None:
    """The estimate of a launched lane; None for attached endpoints or unreadable files."""
    if plan.model is None or not plan.engine.launches:
        return None
    lane = plan.lane
    draft = lane.draft_path(plan.model) if lane.draft is not None else None
    try:
        return estimate_lane(plan.model, draft, plan.ctx, lane.slots, lane.kv)
    except (LanebenchError, OSError, ValueError):
        return None


def check_fit(plans: Sequence[LanePlan], free: Available | None = None) -> None:
    """Refuse, before anything starts, every lane whose estimate exceeds free RAM/VRAM."""
    problems = []
    for plan in plans:
        est = plan_estimate(plan)
        if est is None:
            continue
        gpu = bool(plan.lane.gpu_layers)
        have = free if free is not None else available(gpu=gpu)
        problem = fit_problem(plan.lane.name, est, plan.lane.gpu_layers, have)
        if problem:
            problems.append(problem)
    if problems:
        raise BadInput(cap_lines(problems))


@contextmanager
def measured(plan: LanePlan, endpoint: Endpoint, result: LaneResult) -> Iterator[None]:
    """Samples the server's process group while the body runs, then fills ``result.memory``."""
    proc = getattr(endpoint, "proc", None)
    if proc is None or not plan.engine.launches:
        yield
        return
    sampler = RssSampler(proc.pid)
    with sampler:
        yield
    est = plan_estimate(plan)
    log = endpoint.log_path
    result.memory = memory_record(
        plan.ctx,
        plan.lane.slots,
        Path(log) if log else None,
        sampler,
        gpu_mib_by_pid(),
        est.total_mib if est else None,
    )
