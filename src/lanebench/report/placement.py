"""The Placement table: where each lane's model ran (pure functions over lane results).

Split mode, tensor split and devices as the lane asked; each RPC endpoint with its protocol,
devices and the median round-trip time of small requests measured before the lane started.
The share of the model each device got is the Memory per Device table's (the server log's own
buffers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanebench.records.lane import LaneResult
from lanebench.report.fmt import Table

CSV_COLUMNS = ("split_mode", "tensor_split", "devices", "rpc_endpoints", "rpc_rtt_ms")


def _split(p: dict[str, Any]) -> str:
    parts = []
    if p.get("split_mode"):
        parts.append(str(p["split_mode"]))
    if p.get("tensor_split"):
        parts.append("ts " + ":".join(f"{v:g}" for v in p["tensor_split"]))
    if p.get("main_gpu") is not None:
        parts.append(f"main GPU {p['main_gpu']}")
    return ", ".join(parts) or "default"


def _devices(p: dict[str, Any]) -> str:
    text = ", ".join(p.get("devices") or []) or "default"
    if p.get("draft_devices"):
        text += f"; draft: {', '.join(p['draft_devices'])}"
    return text


def _rpc(probe: dict[str, Any]) -> str:
    rtt = probe.get("rtt_ms_median")
    where = "local" if probe.get("local") else "remote"
    devs = probe.get("devices") or []
    total = sum(float(d.get("total_mib") or 0) for d in devs)
    mem = f", {total / 1024:.1f} GiB" if total else ""
    rtt_text = f"{rtt:.3f} ms" if isinstance(rtt, int | float) else "–"
    return f"{probe.get('endpoint')} ({where}, {len(devs)} dev{mem}, RTT {rtt_text})"


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
        p = lane.placement or {}
        rpc = "; ".join(_rpc(probe) for probe in p.get("rpc") or []) or "–"
        table.rows.append([lane.lane.marked_name, _split(p), _devices(p), rpc])
    return table


def placement_cells(lane: LaneResult) -> list[Any]:
    """The CSV cells in ``CSV_COLUMNS`` order ('' where the lane says nothing)."""
    p = lane.placement or {}
    probes = p.get("rpc") or []
    return [
        p.get("split_mode") or "",
        ":".join(f"{v:g}" for v in p.get("tensor_split") or []),
        ",".join(p.get("devices") or []),
        ",".join(str(x.get("endpoint")) for x in probes),
        ",".join("" if x.get("rtt_ms_median") is None else f"{x['rtt_ms_median']:g}" for x in probes),
    ]
