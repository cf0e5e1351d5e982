"""The Memory plot: one stacked bar per lane (weights · KV · compute · draft, from the server
log), with the peak RSS of the server's process tree marked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lanebench.records.figures import FIGURES, Fig
from lanebench.records.lane import LaneResult

PARTS = tuple(FIGURES[k] for k in (Fig.WEIGHTS, Fig.KV, Fig.COMPUTE, Fig.DRAFT))  # stacked
RSS = FIGURES[Fig.PEAK_RSS]  # marked


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
    for part in PARTS:
        vals = [getattr(lane.memory, part.field) or 0.0 for lane in rows]
        ax.barh(names, vals, left=left, label=part.label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    rss = [(i, v) for i, lane in enumerate(rows) if (v := getattr(lane.memory, RSS.field))]
    if rss:
        ax.scatter([v for _, v in rss], [names[i] for i, _ in rss], marker="|", s=400, c="k", label=RSS.label)
    ax.invert_yaxis()
    ax.set_xlabel(RSS.unit)
    ax.set_title("Memory per lane (server log's buffers; peak RSS marked)")
    ax.legend(loc="lower right", fontsize="small")
    return png(fig)
