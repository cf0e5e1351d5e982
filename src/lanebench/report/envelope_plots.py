"""Plots of the operating envelope (matplotlib, Agg): decode per stream against depth (a line per
lane and concurrency), the steady-state aggregate decode against concurrency (a line per lane and
depth), and time to first token p50 against concurrency; each point the cell's median, its error
bar the cell's min–max (for TTFT: p50 inside the min–max of every request's TTFT).

Colour tells lanes apart, the marker the other axis' level; a lane with emulated acceptance is
drawn dashed with ``[emulated]`` after its name, and the legend says what the mark means (as in
``report.plots``). A plot is drawn only when some line has two points or more. ``png`` and
``plain`` are ``report.plots``' helpers, passed in so this module stays independent of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lanebench.config.lanes import EMULATED_MARK
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult
from lanebench.report.envelope import envelope_lanes, fmt_streams

Png = Callable[[Figure], bytes]
Plain = Callable[..., str]  # (text, limit) -> a label matplotlib shows as typed
# a point: (x, median, low, high); a line: its label, whether emulated, its points
Point = tuple[float, float, float, float]
Line = tuple[str, bool, list[Point]]
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
EMULATED_LEGEND = f"{EMULATED_MARK} emulated acceptance: speed at a chosen acceptance, output not the model's"


def _decode(c: CellSummary) -> Point | None:
    s = c.decode
    return (c.depth, s.median, s.min, s.max) if s else None


def _aggregate(c: CellSummary) -> Point | None:
    s = c.aggregate
    return (c.concurrency, s.median, s.min, s.max) if s else None


def _ttft(c: CellSummary) -> Point | None:
    s, p50 = c.ttft, c.ttft_p50
    return (c.concurrency, p50, min(s.min, p50), max(s.max, p50)) if s and p50 is not None else None


def lines(
    lanes: Sequence[LaneResult],
    series: Callable[[CellSummary], int],
    point: Callable[[CellSummary], Point | None],
    series_label: Callable[[int], str],
) -> list[tuple[int, int, Line]]:
    """(lane index, series index, line) for each lane and each level of the series axis."""
    out = []
    for i, lane in enumerate(envelope_lanes(lanes)):
        levels = sorted({series(c) for c in lane.envelope})
        for j, level in enumerate(levels):
            pts = sorted(p for c in lane.envelope if series(c) == level and (p := point(c)) is not None)
            name = lane.lane.marked_name
            if pts:
                out.append((i, j, (f"{name}, {series_label(level)}", lane.lane.emulated, pts)))
    return out


def _draw(ax: Axes, drawn: list[tuple[int, int, Line]], plain: Plain) -> None:
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, j, (label, emulated, pts) in drawn:
        style: dict[str, Any] = {"color": colours[i % len(colours)], "marker": MARKERS[j % len(MARKERS)]}
        if emulated:
            style["linestyle"] = "--"
        lo = [p[1] - p[2] for p in pts]
        hi = [p[3] - p[1] for p in pts]
        ax.errorbar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            yerr=[lo, hi],
            capsize=3,
            label=plain(label, 60),
            **style,
        )
    if any(line[1] for _, _, line in drawn):
        ax.plot([], [], " ", label=plain(EMULATED_LEGEND, 90))


def _plot(
    drawn: list[tuple[int, int, Line]],
    title: str,
    xlabel: str,
    ylabel: str,
    png: Png,
    plain: Plain,
    xticks: bool = False,
) -> bytes | None:
    if not any(len(line[2]) >= 2 for _, _, line in drawn):
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    _draw(ax, drawn, plain)
    if xticks:
        ax.set_xticks(sorted({p[0] for _, _, line in drawn for p in line[2]}))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2)
    ax.set_title(title)
    return png(fig)


def decode_vs_depth(lanes: Sequence[LaneResult], png: Png, plain: Plain) -> bytes | None:
    """Decode per stream (tok/s) against depth, a line per lane and concurrency."""
    drawn = lines(lanes, lambda c: c.concurrency, _decode, fmt_streams)
    return _plot(
        drawn,
        "Decode per stream vs context depth (median, min–max)",
        "depth (tokens of conversation the server held)",
        "decode per stream (tok/s)",
        png,
        plain,
        xticks=True,
    )


def aggregate_vs_concurrency(lanes: Sequence[LaneResult], png: Png, plain: Plain) -> bytes | None:
    """Steady-state aggregate decode (tok/s) against streams, a line per lane and depth."""
    drawn = lines(lanes, lambda c: c.depth, _aggregate, lambda d: f"depth {d:,}")
    return _plot(
        drawn,
        "Aggregate decode in the steady state vs concurrency (median, min–max)",
        "streams at once",
        "aggregate decode, all streams (tok/s)",
        png,
        plain,
        xticks=True,
    )


def ttft_vs_concurrency(lanes: Sequence[LaneResult], png: Png, plain: Plain) -> bytes | None:
    """Time to first token p50 (s) against streams, a line per lane and depth."""
    drawn = lines(lanes, lambda c: c.depth, _ttft, lambda d: f"depth {d:,}")
    return _plot(
        drawn,
        "Time to first token vs concurrency (p50, min–max of every request)",
        "streams at once",
        "time to first token, p50 (s; lower is better)",
        png,
        plain,
        xticks=True,
    )


def envelope_plots(
    lanes: Sequence[LaneResult], png: Png, plain: Plain
) -> list[tuple[str, str, bytes | None]]:
    """(file stem, caption, PNG or None) of each envelope plot; [] without an envelope to show."""
    if not envelope_lanes(lanes):
        return []
    return [
        (
            "envelope-decode-vs-depth",
            "Envelope: decode per stream vs depth",
            decode_vs_depth(lanes, png, plain),
        ),
        (
            "envelope-aggregate-vs-concurrency",
            "Envelope: steady-state aggregate decode vs concurrency",
            aggregate_vs_concurrency(lanes, png, plain),
        ),
        (
            "envelope-ttft-vs-concurrency",
            "Envelope: time to first token (p50) vs concurrency",
            ttft_vs_concurrency(lanes, png, plain),
        ),
    ]
