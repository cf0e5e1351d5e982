"""Plots of a report as PNG bytes (matplotlib, Agg backend): lane comparison bars, acceptance
against draft block size, prefill against decode, the run-to-run history of a lane, and the
operating envelope's (``report.envelope_plots``).

A lane with emulated acceptance (``LaneSpec.emulated``: the build's ``--spec-synth-*``) is drawn
apart from measured ones in every plot of its speed or acceptance: its name ends in
``[emulated]``, bars are hatched in another colour, points and lines take another marker and a
dashed line, and the legend says what the mark means.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lanebench.config.lanes import EMULATED_MARK
from lanebench.records import figures
from lanebench.records.figures import FIGURES, Fig
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.run import StoredLane
from lanebench.records.samples import Stat
from lanebench.report.data import ReportData
from lanebench.report.envelope_plots import envelope_plots
from lanebench.report.memory_plot import memory_bars
from lanebench.report.quality import left_out, speed_quality_points
from lanebench.report.tables import basename

BARS = tuple(
    (key, figures.label(key) + ("" if FIGURES[key].higher_is_better else ", lower is better"))
    for key in (Fig.DECODE, Fig.PREFILL, Fig.NORMALIZED_WALL, Fig.AGGREGATE)
)
MAX_HISTORY_LANES = 8
MEASURED_STYLE: dict[str, Any] = {"facecolor": "#4c78a8"}
EMULATED_STYLE: dict[str, Any] = {"facecolor": "#b279a2", "hatch": "//", "edgecolor": "#333"}
BELOW: dict[str, Any] = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.13)}  # a legend under the axes
EMULATED_LEGEND = f"{EMULATED_MARK} emulated acceptance: speed at a chosen acceptance, output not the model's"


def plain(text: str, limit: int = 48) -> str:
    """A label matplotlib shows as typed: ``$`` would start mathtext. A long name is cut in its
    middle, never in the trailing ``[...]`` parts (grid values, ``[emulated]``) that tell lanes apart."""
    if len(text) > limit:
        cut = text.find(" [")
        tail = text[cut:] if cut > 0 and len(text) - cut <= limit - 8 else ""
        text = text[: limit - 1 - len(tail)] + "…" + tail
    return text.replace("$", r"\$")


def _marked(lane: LaneResult) -> str:
    """The lane's name, then ``[emulated]`` when its acceptance is emulated."""
    return f"{lane.name} {EMULATED_MARK}" if lane.lane.emulated else lane.name


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _err(stats: list[Stat | None]) -> list[list[float]]:
    lo = [s.median - s.min if s else 0.0 for s in stats]
    hi = [s.max - s.median if s else 0.0 for s in stats]
    return [lo, hi]


def lane_bars(lanes: list[LaneResult], title: str) -> bytes | None:
    """Four panels of horizontal bars, one bar per lane, whiskers min–max; emulated lanes hatched."""
    if not lanes:
        return None
    failed = {LaneStatus.FAILED: " (FAILED)"}
    names = [plain(_marked(lane) + failed.get(lane.status, "")) for lane in lanes]
    emulated = [lane.lane.emulated for lane in lanes]
    height = 1.0 + 0.45 * len(lanes)
    fig, axes = plt.subplots(2, 2, figsize=(13, 2 * height + 1), squeeze=False)
    for ax, (key, label) in zip(axes.flat, BARS, strict=True):
        stats = [lane.summary.get(key) for lane in lanes]
        values = [s.median if s else 0.0 for s in stats]
        bars = ax.barh(
            range(len(lanes)), values, xerr=_err(stats), ecolor="#333", capsize=3, **MEASURED_STYLE
        )
        for bar, emu in zip(bars, emulated, strict=True):
            if emu:
                bar.set(**EMULATED_STYLE)
        ax.set_yticks(range(len(lanes)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    if any(emulated):
        handles = [Patch(**MEASURED_STYLE, label="measured"), Patch(**EMULATED_STYLE, label=EMULATED_LEGEND)]
        fig.legend(handles=handles, loc="lower center", ncols=2, fontsize=8)
    fig.suptitle(plain(title, 90))
    fig.tight_layout(rect=(0, 0.04 if any(emulated) else 0, 1, 1))
    return _png(fig)


def acceptance_vs_block(lanes: list[LaneResult]) -> bytes | None:
    """Acceptance (%) against draft block size, one line per model + draft pair; emulated lanes
    (the acceptance asked of the build, not measured) as their own dashed lines."""
    series: dict[tuple[str, bool], list[tuple[int, float]]] = defaultdict(list)
    for lane in lanes:
        d = lane.lane.draft
        acc = lane.summary.get(Fig.ACCEPTANCE)
        if d is not None and acc is not None:
            key = f"{basename(lane.lane.model)} + {basename(d.path) or 'self'}"
            series[(key, lane.lane.emulated)].append((d.block_size, 100 * acc.median))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for (key, emu), points in sorted(series.items()):
        points.sort()
        style = {"marker": "x", "linestyle": "--"} if emu else {"marker": "o"}
        label = f"{key} {EMULATED_MARK}" if emu else key
        ax.plot([p[0] for p in points], [p[1] for p in points], label=plain(label, 60), **style)  # type: ignore[arg-type]
    marked = any(emu for _, emu in series)
    if marked:
        ax.plot([], [], " ", label=plain(EMULATED_LEGEND, 90))
    ax.set_xlabel("draft block size B (verifies B tokens, drafts B-1)")
    ax.set_ylabel("acceptance (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, **(BELOW if marked else {}))
    ax.set_title("Acceptance vs block size")
    return _png(fig)


def prefill_decode(lanes: list[LaneResult]) -> bytes | None:
    """One point per lane: prefill (x) against decode (y), labelled; emulated lanes marked."""
    pts = [
        (_marked(lane), p.median, d.median, lane.lane.emulated)
        for lane in lanes
        if (p := lane.summary.get(Fig.PREFILL)) and (d := lane.summary.get(Fig.DECODE))
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    for emu, style in (
        (False, {"color": "#f58518", "marker": "o"}),
        (True, {"color": "#b279a2", "marker": "x"}),
    ):
        group = [p for p in pts if p[3] == emu]
        if group:
            label = EMULATED_LEGEND if emu else "measured"
            ax.scatter([p[1] for p in group], [p[2] for p in group], label=plain(label, 90), **style)  # type: ignore[arg-type]
    for name, x, y, _ in pts:
        ax.annotate(plain(name, 40), (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if any(p[3] for p in pts):
        ax.legend(fontsize=7, **BELOW)
    ax.set_xlabel(figures.label(Fig.PREFILL))
    ax.set_ylabel(figures.label(Fig.DECODE))
    ax.grid(alpha=0.3)
    ax.set_title("Prefill vs decode")
    return _png(fig)


def speed_vs_quality(lanes: list[LaneResult]) -> bytes | None:
    """Decode (y) against mean KLD vs the reference (x), the Pareto front joined and marked;
    lanes without a measured KLD (speculative, ...) are not drawn and are listed below the axes."""
    pts = speed_quality_points(lanes)
    if not pts:
        return None
    skipped = left_out(lanes)
    fig, ax = plt.subplots(figsize=(7, 5 + 0.2 * len(skipped)))
    front = sorted((k, s) for _, k, s, on in pts if on)
    ax.scatter([p[1] for p in pts], [p[2] for p in pts], color="#4c78a8", label="lane")
    ax.plot([f[0] for f in front], [f[1] for f in front], color="#e45756", marker="*", markersize=12,
            label="Pareto front (no lane faster at no more KLD)")  # fmt: skip
    for name, x, y, _ in pts:
        ax.annotate(plain(name, 40), (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if max(p[1] for p in pts) > 0 and min(p[1] for p in pts) >= 0:
        ax.set_xscale("symlog", linthresh=1e-4)
    ax.set_xlabel(f"{figures.label(Fig.KLD_MEAN)}, lower is better")
    ax.set_ylabel(figures.label(Fig.DECODE))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Speed vs quality")
    if skipped:
        lines = ["not drawn (no KLD measured):"] + [f"{plain(n, 40)}: {plain(why, 90)}" for n, why in skipped]
        fig.text(0.01, 0.0, "\n".join(lines), fontsize=7, va="top", ha="left")
    return _png(fig)


def history(data: ReportData) -> bytes | None:
    """Decode median of each reported lane across every stored run that measured it."""
    names = [lane.name for rd in data.runs for lane in rd.lanes]
    emulated = {lane.name for rd in data.runs for lane in rd.lanes if lane.lane.emulated}
    by_name: dict[str, list[StoredLane]] = defaultdict(list)
    for h in data.history:
        if h.name in names and h.summary.get(Fig.DECODE):
            by_name[h.name].append(h)
    lines = {n: rows for n, rows in by_name.items() if len(rows) >= 2}
    if not lines:
        return None
    runs = sorted({(h.started_at, h.run_id) for rows in lines.values() for h in rows})
    index = {r[1]: i for i, r in enumerate(runs)}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name in list(dict.fromkeys(names))[:MAX_HISTORY_LANES]:
        rows = lines.get(name)
        if not rows:
            continue
        xs = [index[h.run_id] for h in rows]
        stats = [h.summary[Fig.DECODE] for h in rows]
        emu = name in emulated
        style = {"marker": "x", "linestyle": "--"} if emu else {"marker": "o"}
        label = plain(f"{name} {EMULATED_MARK}" if emu else name)
        ax.errorbar(xs, [s.median for s in stats], yerr=_err(list(stats)), capsize=3, label=label, **style)  # type: ignore[arg-type]
    if emulated & set(lines):
        ax.plot([], [], " ", label=plain(EMULATED_LEGEND, 90))
    ax.set_xticks(range(len(runs)), [plain(f"{r[1]}\n{r[0][:10]}", 40) for r in runs], fontsize=7)
    ax.set_ylabel(figures.label(Fig.DECODE))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Run-to-run history (decode, median and min–max)")
    return _png(fig)


def all_plots(data: ReportData) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG) of every plot that has data."""
    out: list[tuple[str, str, bytes | None]] = []
    for i, rd in enumerate(data.runs):
        out.append(
            (
                f"lanes-{i + 1}.png",
                f"Lane comparison, run {rd.run.run_id}",
                lane_bars(rd.lanes, f"run {rd.run.run_id}"),
            )
        )
    lanes = [lane for rd in data.runs for lane in rd.lanes]
    out.append(("acceptance-vs-block.png", "Draft acceptance vs block size", acceptance_vs_block(lanes)))
    out.append(("prefill-vs-decode.png", "Prefill vs decode", prefill_decode(lanes)))
    out.append(("history.png", "Run-to-run history of each lane (decode)", history(data)))
    for i, rd in enumerate(data.runs):
        caption = f"Memory per lane, run {rd.run.run_id}"
        out.append((f"memory-{i + 1}.png", caption, memory_bars(rd.lanes, _png, plain)))
    for i, rd in enumerate(data.runs):
        caption = f"Speed vs quality (decode against mean KLD), run {rd.run.run_id}"
        if skipped := left_out(rd.lanes):
            caption += "; not drawn, no KLD measured: " + ", ".join(n for n, _ in skipped)
        out.append((f"speed-vs-quality-{i + 1}.png", caption, speed_vs_quality(rd.lanes)))
    for i, rd in enumerate(data.runs):
        for stem, caption, png in envelope_plots(rd.lanes, _png, plain):
            out.append((f"{stem}-{i + 1}.png", f"{caption}, run {rd.run.run_id}", png))
    return [(n, c, png) for n, c, png in out if png is not None]


def save_plots(data: ReportData, directory: Path) -> list[Path]:
    """Write every plot as PNG into ``directory``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, _caption, png in all_plots(data):
        path = directory / name
        path.write_bytes(png)
        paths.append(path)
    return paths
