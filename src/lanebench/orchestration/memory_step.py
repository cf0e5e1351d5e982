"""Memory per lane: the estimate from the GGUF (fit before start) and the measurement while
a llama.cpp lane's job runs (see ``lanebench.memory``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lanebench.config.lanesfile import cap_lines
from lanebench.config.placement import VISIBILITY_ENV
from lanebench.engines.base import Endpoint, LanePlan
from lanebench.engines.llamacpp.devices import list_devices
from lanebench.engines.llamacpp.rpc import RpcError, probe
from lanebench.errors import BadInput, LanebenchError
from lanebench.memory.asked import Asked, asked_of
from lanebench.memory.collect import memory_record
from lanebench.memory.estimate import LaneEstimate, estimate_lane
from lanebench.memory.fit import (
    draft_cache,
    lay_out,
    local_rpc_devices,
    problems,
    ram_available_mib,
    settings_of,
    summary,
)
from lanebench.memory.gpu import find_probe
from lanebench.memory.layout import Device, Layout, Machine
from lanebench.memory.proc import RssSampler
from lanebench.memory.serverdefaults import ServerDefaults, read_server_defaults
from lanebench.memory.vram import VramSampler
from lanebench.records.lane import LaneResult


def server_view(plan: LanePlan) -> tuple[Asked, ServerDefaults | None]:
    """What the lane tells its server (environment, fields, extra_args) and the build's defaults."""
    asked = asked_of(plan.lane, {**os.environ, **plan.lane.env})
    return asked, read_server_defaults(plan.server_bin) if plan.server_bin is not None else None


def plan_estimate(plan: LanePlan) -> LaneEstimate | None:
    """The estimate of a launched lane; None for attached endpoints or unreadable files."""
    if plan.model is None or not plan.engine.launches:
        return None
    lane = plan.lane
    draft = lane.draft_path(plan.model) if lane.draft is not None else None
    asked, defaults = server_view(plan)
    try:
        draft_kv, notes = draft_cache(asked, defaults, lane.kv)
        est = estimate_lane(
            plan.model, draft, plan.ctx, lane.slots, lane.kv, draft_kv, lane.flash_attn != "off"
        )
    except (LanebenchError, OSError, ValueError):
        return None
    est.notes += notes if draft is not None else []
    return est


def lane_machine(plan: LanePlan, ram_mib: float | None) -> Machine:
    """Free memory for the lane: RAM, the build's devices here (``--list-devices``, with the
    lane's device-visibility variables) and its RPC devices (each ``rpc`` endpoint asked now;
    ``rpc_local`` ones from what they will serve)."""
    lane = plan.lane
    env = tuple((k, v) for k, v in sorted(lane.env.items()) if k in VISIBILITY_ENV)
    found = list_devices(plan.server_bin, env) if plan.server_bin is not None else None
    local = tuple(Device(d.name, float(d.free_mib)) for d in found) if found is not None else None
    rpc: list[Device] = []
    for endpoint in lane.rpc:
        try:
            frees = [d.free_mib for d in probe(endpoint, rounds=1).devices] or [None]
        except (OSError, RpcError):
            frees = [None]
        rpc += [Device(f"RPC{len(rpc) + j}", f, f"RPC server {endpoint}") for j, f in enumerate(frees)]
    for i, entry in enumerate(lane.rpc_local):
        rpc += local_rpc_devices(entry, i, len(rpc), local, ram_mib)
    return Machine(ram_mib, local, tuple(rpc))


def fit_layout(plan: LanePlan, machine: Machine, est: LaneEstimate) -> Layout:
    """The lane's memory per place, with what was assumed in its notes."""
    asked, defaults = server_view(plan)
    settings, notes = settings_of(asked, defaults)
    layout = lay_out(est, settings, machine)
    layout.notes[:0] = [*notes, *est.notes]
    return layout


def check_fit(plans: Sequence[LanePlan], machine_of: Callable[[LanePlan], Machine] | None = None) -> None:
    """Refuse, before anything starts, every lane that the numbers show cannot fit (one line
    per place); each plan keeps its per-place estimate and assumptions in ``fit_notes``.
    ``machine_of``: the free memory a lane sees (default: this machine's, ``lane_machine``)."""
    if machine_of is None:
        ram = ram_available_mib()
        machine_of = functools.partial(lane_machine, ram_mib=ram)
    found = []
    for plan in plans:
        est = plan_estimate(plan)
        if est is None:
            continue
        layout = fit_layout(plan, machine_of(plan), est)
        plan.fit_notes = [summary(layout), *layout.notes]
        found += problems(plan.lane.name, layout)
    if found:
        raise BadInput(cap_lines(found))


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
    result.memory.notes += plan.fit_notes
