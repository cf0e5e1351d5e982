"""Memory per lane: the estimate from the GGUF (fit before start) and the measurement while
a llama.cpp lane's job runs (see ``lanebench.memory``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lanebench.engines.base import Endpoint, LanePlan
from lanebench.errors import BadInput, LanebenchError
from lanebench.lanes import cap_lines
from lanebench.memory.collect import memory_record
from lanebench.memory.estimate import LaneEstimate, estimate_lane
from lanebench.memory.fit import Available, available, fit_problem
from lanebench.memory.gpu import find_probe
from lanebench.memory.proc import RssSampler
from lanebench.memory.vram import VramSampler
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


def lane_leaders(endpoint: Endpoint) -> list[int]:
    """The pids whose process groups make up the lane: ``endpoint.process_group_pids`` (a list
    of ints, llama-server first, then each local RPC server, every one a group leader) when the
    endpoint has it and it is not empty, else ``[endpoint.proc.pid]``; [] for neither."""
    leaders = getattr(endpoint, "process_group_pids", None)
    if leaders:
        return [int(p) for p in leaders]
    proc = getattr(endpoint, "proc", None)
    return [proc.pid] if proc is not None else []


@contextmanager
def measured(plan: LanePlan, endpoint: Endpoint, result: LaneResult) -> Iterator[None]:
    """Samples the lane's process groups (RSS every 0.2 s, GPU memory every second when
    nvidia-smi/rocm-smi is there) while the body runs, then fills ``result.memory``."""
    leaders = lane_leaders(endpoint)
    if not leaders or not plan.engine.launches:
        yield
        return
    sampler = RssSampler(leaders)
    probe, absent = find_probe()
    vram = VramSampler(sampler.pgids, probe, absent=absent)
    with sampler, vram:
        yield
    est = plan_estimate(plan)
    log = endpoint.log_path
    result.memory = memory_record(
        plan.ctx,
        plan.lane.slots,
        Path(log) if log else None,
        sampler,
        vram,
        est.total_mib if est else None,
        {**os.environ, **plan.lane.env},
    )
