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

from lanebench.records.figures import FIGURES, MEMORY, Fig
from lanebench.records.lane import LaneResult
from lanebench.records.memory import DEVICE_KEYS, HOST, DeviceMemory, MemoryRecord
from lanebench.report.fmt import Table

# every memory figure of the figures table, after the context it was measured at
CSV_COLUMNS = ("mem_ctx", "mem_slots", *(f"mem_{f.key}" for f in MEMORY))
_FIELDS = ("ctx", "slots", *(f.field for f in MEMORY))
# the Memory table's figures (the high-water mark is in the CSV only)
_SHOWN = tuple(FIGURES[k] for k in (Fig.WEIGHTS, Fig.KV, Fig.COMPUTE, Fig.DRAFT, Fig.PEAK_RSS, Fig.PEAK_VRAM,
                                    Fig.ESTIMATE))  # fmt: skip
_BUFFERS = tuple(FIGURES[k] for k in (Fig.WEIGHTS, Fig.KV, Fig.COMPUTE, Fig.DRAFT))  # the log's, per device
_VRAM = FIGURES[Fig.PEAK_VRAM]


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
        headers=["Lane", "ctx × slots", *(f.label for f in _SHOWN)],
        caption="weights/KV/compute/draft: the server log's buffers; peak RSS: the server's process "
        "groups, sampled every 0.2 s during the job; VRAM: nvidia-smi/rocm-smi, sampled every second; "
        "estimate: from the GGUF before start",
    )
    for lane in rows:
        m = lane.memory
        assert m is not None
        cells = [fmt_mib(getattr(m, f.field)) for f in _SHOWN]
        table.rows.append([lane.lane.marked_name, f"{m.ctx} × {m.slots}", *cells])
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
    names = [d.device for d in m.devices if d.logged and d.device != HOST]
    return len(names) > 1 or any(n.startswith("RPC") for n in names)


def device_rows(lanes: Sequence[LaneResult]) -> list[list[Any]]:
    """CSV rows in ``DEVICE_CSV_COLUMNS`` order, one per (lane, device), for every lane with
    per-device figures ('' where unknown)."""
    rows = []
    for lane in lanes:
        for d in lane.memory.devices if lane.memory else []:
            rows.append([lane.name, *_cells(d)])
    return rows


def _cells(d: DeviceMemory) -> list[Any]:
    return ["" if (v := getattr(d, k)) is None else v for k in DEVICE_KEYS]


def _share(v: float | None) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def device_table(lanes: Sequence[LaneResult]) -> Table | None:
    """Lane · device · weights · KV · compute · draft · weights share · peak VRAM; None unless some
    lane's model is split (``is_split``)."""
    if not any(is_split(lane.memory) for lane in lanes):
        return None
    table = Table(
        title="Memory per Device",
        headers=["Lane", "Device", *(f.label for f in _BUFFERS), "Weights share", _VRAM.label],
        caption="the server log's buffers per device (host: every buffer in the server's RAM); weights "
        "share: of the main model's weights outside host memory; peak VRAM: nvidia-smi, the lane's "
        "processes on that GPU, sampled every second (an RPC server's GPU is named by nvidia-smi)",
    )
    for lane in lanes:
        if not is_split(lane.memory):
            continue
        assert lane.memory is not None
        for d in lane.memory.devices:
            parts = [fmt_mib(getattr(d, f.field)) for f in _BUFFERS]
            share, peak = _share(d.weights_share), fmt_mib(getattr(d, _VRAM.field))
            table.rows.append([lane.lane.marked_name, d.device, *parts, share, peak])
    return table
