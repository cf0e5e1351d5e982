"""Memory per lane, as its engine told it: the estimate laid out over the places the lane would
run (the fit check, before anything starts; ``LanePlan.fit``, the engine's ``memory_fit`` taken
when it planned the lane) and the measurement while its job runs (``Engine.memory_sources``: the
process groups to sample, the log to read). See ``lanebench.memory``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from lanebench.config.lanesfile import cap_lines
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import MemoryFit, MemorySources, Unavailable
from lanebench.errors import BadInput
from lanebench.memory.collect import memory_record
from lanebench.memory.estimate import LaneEstimate
from lanebench.memory.fit import problems, ram_available_mib, summary
from lanebench.memory.gpu import find_probe
from lanebench.memory.layout import Machine
from lanebench.memory.proc import RssSampler
from lanebench.memory.vram import VramSampler
from lanebench.records.lane import LaneResult


def plan_fit(plan: LanePlan) -> MemoryFit | Unavailable:
    """The fit the engine gave the plan (asked of it now for a plan not made by its ``plan``)."""
    return plan.fit if plan.fit is not None else plan.engine.memory_fit(plan)


def plan_estimate(plan: LanePlan) -> LaneEstimate | None:
    """The lane's estimate (MiB); None when its engine has none or its files cannot be read."""
    fit = plan_fit(plan)
    return None if isinstance(fit, Unavailable) else fit.estimate


def check_fit(plans: Sequence[LanePlan], machine_of: Callable[[LanePlan], Machine] | None = None) -> None:
    """Refuse, before anything starts, every lane that the numbers show cannot fit (one line
    per place); each plan keeps its per-place estimate and assumptions in ``fit_notes``.
    ``machine_of``: the free memory a lane sees (default: what its engine finds here)."""
    ram = ram_available_mib() if machine_of is None else None
    found = []
    for plan in plans:
        fit = plan_fit(plan)
        if isinstance(fit, Unavailable):
            continue
        layout = fit.layout(machine_of(plan) if machine_of is not None else fit.machine(ram))
        plan.fit_notes = [summary(layout), *layout.notes]
        found += problems(plan.lane.name, layout)
    if found:
        raise BadInput(cap_lines(found))


def lane_leaders(sources: MemorySources | Unavailable) -> list[int]:
    """The pids whose process groups make up the lane, as its engine says; [] for none."""
    return [] if isinstance(sources, Unavailable) else sources.leaders


@contextmanager
def measured(plan: LanePlan, sources: MemorySources | Unavailable, result: LaneResult) -> Iterator[None]:
    """Samples the lane's process groups (``sources``, the engine's ``memory_sources``: RSS every
    0.2 s, GPU memory every second when nvidia-smi/rocm-smi is there) while the body runs, then
    fills ``result.memory``."""
    if isinstance(sources, Unavailable) or not sources.leaders:
        yield
        return
    sampler = RssSampler(sources.leaders)
    probe, absent = find_probe()
    vram = VramSampler(sampler.pgids, probe, absent=absent)
    with sampler, vram:
        yield
    est = plan_estimate(plan)
    result.memory = memory_record(
        plan.ctx,
        plan.lane.slots,
        sources.log,
        sampler,
        vram,
        est.total_mib if est else None,
        sources.env,
    )
    result.memory.notes += [*sources.notes, *plan.fit_notes]
