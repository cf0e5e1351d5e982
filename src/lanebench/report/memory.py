"""The Memory table: what each lane's server took (pure functions over lane results).

Weights, KV and compute are the server log's own buffer sizes for the main model (compute
includes the output buffer); draft is every buffer of the draft model or head; peak RSS is the
server's process tree sampled during the job; peak VRAM is nvidia-smi's per-process figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanebench.fmt import Table
from lanebench.records import LaneResult, MemoryRecord

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
        "tree, sampled every 0.2 s during the job; VRAM: nvidia-smi; estimate: from the GGUF before start",
    )
    for lane in rows:
        m = lane.memory
        assert m is not None
        table.rows.append(
            [
                lane.name,
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
