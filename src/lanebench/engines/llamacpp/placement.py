"""Where a llama.cpp lane's model ran (``LlamaCpp.placement``): its placement fields, the devices
the build saw here, and what each RPC endpoint answered before the lane started
(``LaneResult.placement``)."""

from __future__ import annotations

from lanebench.config.lanes import LaneSpec
from lanebench.config.placement import PLACED
from lanebench.engines.base import Endpoint, LanePlan
from lanebench.engines.llamacpp.devices import list_devices
from lanebench.records.placement import PlacementRecord


def placed(lane: LaneSpec) -> bool:
    """Whether the lane says where its model runs (devices, split, RPC servers)."""
    return any(f in PLACED for f in lane.engine_fields())


def placement_record(plan: LanePlan, endpoint: Endpoint) -> PlacementRecord | None:
    """None for lanes that say nothing about placement and use no RPC server."""
    lane = plan.lane
    probes = getattr(endpoint, "placement", None)  # an RpcLaneEndpoint's probes
    if not placed(lane) and probes is None:
        return None
    rec = PlacementRecord(
        split_mode=lane.split_mode,
        tensor_split=list(lane.tensor_split) if lane.tensor_split else None,
        main_gpu=lane.main_gpu,
        devices=list(lane.devices) if lane.devices else None,
        draft_devices=list(lane.draft.devices) if lane.draft and lane.draft.devices else None,
    )
    if probes is not None:
        rec.rpc = probes()
    if plan.server_bin is not None:
        found = list_devices(plan.server_bin)
        rec.local_devices = list(found) if found is not None else None
    return rec
