"""A llama.cpp lane's memory fit (``LlamaCpp.memory_fit``): the estimate from its GGUF files with
what the lane tells its server and the build's stated defaults, and the free memory of the places
the build would use (``--list-devices``, the lane's RPC servers). What to read while it runs (its
process groups, its log's buffer sizes) is ``LlamaCpp.memory_sources``. See ``lanebench.memory``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lanebench.config.placement import VISIBILITY_ENV, RpcLocal
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import Unavailable
from lanebench.engines.llamacpp.devices import list_devices
from lanebench.engines.llamacpp.rpc import RpcError, probe
from lanebench.errors import LanebenchError
from lanebench.memory.asked import Asked, asked_of
from lanebench.memory.estimate import LaneEstimate, estimate_lane
from lanebench.memory.fit import draft_cache, lay_out, local_rpc_devices, settings_of
from lanebench.memory.layout import Device, Layout, Machine
from lanebench.memory.serverdefaults import ServerDefaults, read_server_defaults


@dataclass(frozen=True, slots=True)
class Places:
    """Where a lane would run, as its free memory is looked up: the build (``--list-devices``),
    the lane's device-visibility variables and its RPC servers."""

    server_bin: Path | None
    visibility: tuple[tuple[str, str], ...]
    rpc: tuple[str, ...]
    rpc_local: tuple[RpcLocal, ...]


def places_of(plan: LanePlan) -> Places:
    lane = plan.lane
    env = tuple((k, v) for k, v in sorted(lane.env.items()) if k in VISIBILITY_ENV)
    return Places(plan.server_bin, env, tuple(lane.rpc), tuple(lane.rpc_local))


def lane_machine(places: Places, ram_mib: float | None) -> Machine:
    """Free memory for the lane: RAM, the build's devices here (``--list-devices``, with the
    lane's device-visibility variables) and its RPC devices (each ``rpc`` endpoint asked now;
    ``rpc_local`` ones from what they will serve)."""
    found = list_devices(places.server_bin, places.visibility) if places.server_bin is not None else None
    local = tuple(Device(d.name, float(d.free_mib)) for d in found) if found is not None else None
    rpc: list[Device] = []
    for endpoint in places.rpc:
        try:
            frees = [d.free_mib for d in probe(endpoint, rounds=1).devices] or [None]
        except (OSError, RpcError):
            frees = [None]
        rpc += [Device(f"RPC{len(rpc) + j}", f, f"RPC server {endpoint}") for j, f in enumerate(frees)]
    for i, entry in enumerate(places.rpc_local):
        rpc += local_rpc_devices(entry, i, len(rpc), local, ram_mib)
    return Machine(ram_mib, local, tuple(rpc))


@dataclass(slots=True)
class LlamaMemoryFit:
    """``MemoryFit`` of a llama.cpp lane: its estimate, where it would run, the layout;
    ``asked``/``defaults``: what the lane tells its server and the build's defaults, read once."""

    lane_estimate: LaneEstimate
    places: Places
    asked: Asked
    defaults: ServerDefaults | None

    @property
    def estimate(self) -> LaneEstimate:
        return self.lane_estimate

    def machine(self, ram_mib: float | None) -> Machine:
        return lane_machine(self.places, ram_mib)

    def layout(self, machine: Machine) -> Layout:
        """The lane's memory per place, with what was assumed in its notes."""
        settings, notes = settings_of(self.asked, self.defaults)
        layout = lay_out(self.lane_estimate, settings, machine)
        layout.notes[:0] = [*notes, *self.lane_estimate.notes]
        return layout


def memory_fit(plan: LanePlan) -> LlamaMemoryFit | Unavailable:
    """The lane's estimate from its GGUF files, with what it tells its server (environment,
    fields, extra_args) and the build's defaults; Unavailable when its files cannot be read."""
    lane = plan.lane
    unreadable = Unavailable(f"lane {lane.name!r}: no memory estimate (its model files could not be read)")
    if plan.model is None:
        return unreadable
    defaults = read_server_defaults(plan.server_bin) if plan.server_bin is not None else None
    draft = plan.draft_model
    if draft is None and lane.draft is not None:
        draft = lane.draft_path(plan.model)  # a plan built by hand, not by ``LlamaCpp.plan``
    places = places_of(plan)
    asked = asked_of(lane, {**os.environ, **lane.env})
    try:
        draft_kv, notes = draft_cache(asked, defaults, lane.kv)
        est = estimate_lane(
            plan.model, draft, plan.ctx, lane.slots, lane.kv, draft_kv, lane.flash_attn != "off"
        )
    except (LanebenchError, OSError, ValueError):
        return unreadable
    est.notes += notes if draft is not None else []
    return LlamaMemoryFit(est, places, asked, defaults)
