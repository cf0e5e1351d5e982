"""The Memory table: what each lane's server took (pure functions over lane results).

Weights, KV and compute are the server log's own buffer sizes for the main model (compute
includes the output buffer); draft is every buffer of the draft model or head; peak RSS is the
server's process groups (llama-server and any local RPC servers) sampled during the job; peak
VRAM is the lane's processes' GPU memory (nvidia-smi or rocm-smi) summed over GPUs, peak over
samples. The Memory per Device table splits the log's buffers by device when a lane's model is
split over several devices or an RPC server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanebench.memory.devices import DEVICE_KEYS, HOST
from lanebench.records.lane import LaneResult
from lanebench.records.memory import MemoryRecord
from lanebench.report.fmt import Table

CSV_COLUMNS = ("mem_ctx", "mem_slots", "mem_weights_mib", "mem_kv_mib", "mem_compute_mib", "mem_draft_mib",
               "mem_peak_rss_mib", "mem_hwm_mib", "mem_peak_vram_mib", "mem_estimate_mib")  # fmt: skip
_FIELDS = ("ctx", "slots", "weights", "kv", "compute", "draft", "peak_rss", "hwm", "peak_vram", "estimate")


def fmt_mib(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1024:.2f} GiB" if v >= 1024 else f"{v:.1f} MiB"


def memory_table(lanes: Sequence[LaneResult]) -> Table | None:
    """Lane · ctx × slots · weights · KV · compute · draft · peak RSS · peak VRAM · estimate; None
    when no lane has memory figures."""
    rows = [lane for lane in lanes if lane.memory is not None]
    if not rows:
        return None
    table = Table(
        title="Memory",
        headers=[
            "Lane",
            "ctx × slots",
            "Weights",
            "KV",
            "Compute",
            "Draft",
            "Peak RSS",
            "Peak VRAM",
            "Estimate",
        ],
        caption="weights/KV/compute/draft: the server log's buffers; peak RSS: the server's process "
        "groups, sampled every 0.2 s during the job; VRAM: nvidia-smi/rocm-smi, sampled every second; "
        "estimate: from the GGUF before start",
    )
    for lane in rows:
        m = lane.memory
        assert m is not None
        table.rows.append(
            [
                lane.lane.marked_name,
                f"{m.ctx} × {m.slots}",
                fmt_mib(m.weights),
                fmt_mib(m.kv),
                fmt_mib(m.compute),
                fmt_mib(m.draft),
                fmt_mib(m.peak_rss),
                fmt_mib(m.peak_vram),
                fmt_mib(m.estimate),
            ]
        )
    return table


def memory_cells(m: MemoryRecord | None) -> list[Any]:
    """The CSV cells in ``CSV_COLUMNS`` order ('' where unknown)."""
    if m is None:
        return [""] * len(CSV_COLUMNS)
    return ["" if getattr(m, f) is None else getattr(m, f) for f in _FIELDS]


DEVICE_CSV_COLUMNS = ("lane", "device", "weights_mib", "kv_mib", "compute_mib", "draft_mib", "weights_share",
                      "peak_vram_mib", "vram_total_mib", "gpu")  # fmt: skip


def is_split(m: MemoryRecord | None) -> bool:
    """The log names more than one device outside host memory, or any RPC device: worth a
    per-device table (a GPU that only nvidia-smi names does not count)."""
    if m is None:
        return False
    logged = [
        d for d in m.devices if any(d.get(k) is not None for k in ("weights", "kv", "compute", "draft"))
    ]
    names = [str(d.get("device")) for d in logged if d.get("device") != HOST]
    return len(names) > 1 or any(n.startswith("RPC") for n in names)


def device_rows(lanes: Sequence[LaneResult]) -> list[list[Any]]:
    """CSV rows in ``DEVICE_CSV_COLUMNS`` order, one per (lane, device), for every lane with
    per-device figures ('' where unknown)."""
    rows = []
    for lane in lanes:
        for d in lane.memory.devices if lane.memory else []:
            rows.append([lane.name, *("" if d.get(k) is None else d[k] for k in DEVICE_KEYS)])
    return rows


def _share(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def device_table(lanes: Sequence[LaneResult]) -> Table | None:
    """Lane · device · weights · KV · compute · draft · weights share · peak VRAM; None unless some
    lane's model is split (``is_split``)."""
    if not any(is_split(lane.memory) for lane in lanes):
        return None
    table = Table(
        title="Memory per Device",
        headers=["Lane", "Device", "Weights", "KV", "Compute", "Draft", "Weights share", "Peak VRAM"],
        caption="the server log's buffers per device (host: every buffer in the server's RAM); weights "
        "share: of the main model's weights outside host memory; peak VRAM: nvidia-smi, the lane's "
        "processes on that GPU, sampled every second (an RPC server's GPU is named by nvidia-smi)",
    )
    for lane in lanes:
        if not is_split(lane.memory):
            continue
        assert lane.memory is not None
        for d in lane.memory.devices:
            parts = [fmt_mib(d.get(k)) for k in ("weights", "kv", "compute", "draft")]
            share, peak = _share(d.get("weights_share")), fmt_mib(d.get("peak_vram"))
            table.rows.append([lane.lane.marked_name, str(d.get("device")), *parts, share, peak])
    return table
