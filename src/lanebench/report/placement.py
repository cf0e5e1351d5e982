"""The Placement table: where each lane's model ran (pure functions over lane results).

Split mode, tensor split and devices as the lane asked; each RPC endpoint with its protocol,
devices and the median round-trip time of small requests measured before the lane started.
The share of the model each device got is the Memory per Device table's (the server log's own
buffers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult
from lanebench.records.placement import PlacementRecord, RpcProbe
from lanebench.report.fmt import Table

CSV_COLUMNS = ("split_mode", "tensor_split", "devices", "rpc_endpoints", str(Fig.RPC_RTT))


def _split(p: PlacementRecord) -> str:
    parts = []
    if p.split_mode:
        parts.append(p.split_mode)
    if p.tensor_split:
        parts.append("ts " + ":".join(f"{v:g}" for v in p.tensor_split))
    if p.main_gpu is not None:
        parts.append(f"main GPU {p.main_gpu}")
    return ", ".join(parts) or "default"


def _devices(p: PlacementRecord) -> str:
    text = ", ".join(p.devices or []) or "default"
    if p.draft_devices:
        text += f"; draft: {', '.join(p.draft_devices)}"
    return text


def _rpc(probe: RpcProbe) -> str:
    rtt = probe.rtt_ms_median
    where = "local" if probe.local else "remote"
    total = probe.total_mib
    mem = f", {total / 1024:.1f} GiB" if total else ""
    rtt_text = f"{rtt:.3f} ms" if rtt is not None else "–"
    return f"{probe.endpoint} ({where}, {len(probe.devices)} dev{mem}, RTT {rtt_text})"


def placement_table(lanes: Sequence[LaneResult]) -> Table | None:
    """Lane · split · devices · RPC endpoints; None when no lane says where it ran."""
    rows = [lane for lane in lanes if lane.placement]
    if not rows:
        return None
    table = Table(
        title="Placement",
        headers=["Lane", "Split", "Devices", "RPC servers (before the lane started)"],
        caption="split and devices as the lane asked (llama.cpp -sm/-ts/-mg/--device); RPC: protocol "
        "handshake, devices and median round trip of 5 small requests per endpoint",
    )
    for lane in rows:
        p = lane.placement
        assert p is not None
        rpc = "; ".join(_rpc(probe) for probe in p.rpc) or "–"
        table.rows.append([lane.lane.marked_name, _split(p), _devices(p), rpc])
    return table


def placement_cells(lane: LaneResult) -> list[Any]:
    """The CSV cells in ``CSV_COLUMNS`` order ('' where the lane says nothing)."""
    p = lane.placement or PlacementRecord()
    return [
        p.split_mode or "",
        ":".join(f"{v:g}" for v in p.tensor_split or []),
        ",".join(p.devices or []),
        ",".join(x.endpoint for x in p.rpc),
        ",".join("" if x.rtt_ms_median is None else f"{x.rtt_ms_median:g}" for x in p.rpc),
    ]
