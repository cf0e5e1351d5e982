"""The Memory plot: one stacked bar per lane (weights · KV · compute · draft, from the server
log), with the peak RSS of the server's process tree marked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lanebench.records.lane import LaneResult

PARTS = (("weights", "weights"), ("kv", "KV"), ("compute", "compute"), ("draft", "draft/head"))


def memory_bars(
    lanes: Sequence[LaneResult], png: Callable[[Figure], bytes], plain: Callable[[str], str]
) -> bytes | None:
    """PNG bytes, or None when no lane has the log's breakdown. ``png``/``plain`` are the
    plots module's helpers (passed in so this module stays independent of it)."""
    rows = [lane for lane in lanes if lane.memory is not None and lane.memory.weights is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.5 * len(rows)))
    names = [plain(lane.lane.marked_name) for lane in rows]
    left = [0.0] * len(rows)
    for key, label in PARTS:
        vals = [getattr(lane.memory, key) or 0.0 for lane in rows]
        ax.barh(names, vals, left=left, label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    rss = [(i, lane.memory.peak_rss) for i, lane in enumerate(rows) if lane.memory and lane.memory.peak_rss]
    if rss:
        ax.scatter(
            [v for _, v in rss], [names[i] for i, _ in rss], marker="|", s=400, c="k", label="peak RSS"
        )
    ax.invert_yaxis()
    ax.set_xlabel("MiB")
    ax.set_title("Memory per lane (server log's buffers; peak RSS marked)")
    ax.legend(loc="lower right", fontsize="small")
    return png(fig)
