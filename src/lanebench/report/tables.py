"""The seed report's tables, built from lane results as plain rows of strings.

``Table`` (from ``lanebench.report.fmt``) is a title, headers and rows; ``to_markdown`` gives the format
people post, and ``to_rich`` the terminal view. Figures are medians; where there was more than one
sample the spread (min–max) follows in parentheses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table as RichTable
from rich.text import Text

from lanebench.busy.verdict import any_busy, busy_caption, busy_mark, busy_note
from lanebench.config.job import JobSpec
from lanebench.config.lanes import EMULATED_MARK
from lanebench.records.figures import FIGURES, Fig
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.samples import Stat
from lanebench.report.fmt import Table


def fmt_stat(s: Stat | None, unit: str = "", digits: int = 1) -> str:
    """``59.4 tok/s (58.9–60.1)``; a single sample has no spread; missing is ``–``."""
    if s is None:
        return "–"
    u = f" {unit}" if unit else ""
    text = f"{s.median:.{digits}f}{u}"
    if s.n > 1 and s.max > s.min:
        text += f" ({s.min:.{digits}f}–{s.max:.{digits}f})"
    return text


def fmt_pct(s: Stat | None) -> str:
    if s is None:
        return "–"
    text = f"{100 * s.median:.1f}%"
    if s.n > 1 and s.max > s.min:
        text += f" ({100 * s.min:.1f}–{100 * s.max:.1f})"
    return text


def fig_cell(lane: LaneResult, key: Fig, digits: int = 1) -> str:
    """A lane's figure as ``fmt_stat`` gives it in the figure's unit, marked when measured on a
    busy machine."""
    stat = lane.summary.get(key)
    text = fmt_stat(stat, FIGURES[key].unit, digits)
    return text + busy_mark(lane.busy.figures if lane.busy else None, key) if stat else text


EMULATED_NOTE = (
    "emulated acceptance (the build's --spec-synth-*): speed at a chosen acceptance, output not the model's"
)


def lane_cell(lane: LaneResult) -> str:
    """The Lane column: the name, then ``[emulated]`` when the acceptance is emulated (every
    figure of such a lane is at a chosen acceptance; the Notes column says so in words)."""
    return f"{lane.name} {EMULATED_MARK}" if lane.lane.emulated else lane.name


def lane_notes(lane: LaneResult) -> str:
    """The Notes column: the lane's own note, then flags, then why it failed."""
    parts = [lane.lane.notes]
    if lane.lane.emulated:
        parts.append(EMULATED_NOTE)
    parts += [f"⚠ {f}" for f in lane.flags]
    parts.append(busy_note(lane.busy))
    if lane.status == LaneStatus.FAILED:
        parts.append(f"FAILED: {lane.error or 'unknown error'}")
    return "; ".join(p for p in parts if p)


def latest_numbers(lanes: Sequence[LaneResult], job: JobSpec) -> Table:
    """Lane · Load to listening · Prefill · Decode · Normalized wall · N-slot aggregate · Notes."""
    table = Table(
        title="Latest Measured Numbers",
        headers=[
            "Lane",
            "Load to listening",
            FIGURES[Fig.PREFILL].label,
            FIGURES[Fig.DECODE].label,
            f"{FIGURES[Fig.NORMALIZED_WALL].label}, {job.n_in}-in/{job.n_out}-out",
            f"{job.aggregate}-slot aggregate" if job.aggregate else "Aggregate (skipped)",
            "Notes",
        ],
        caption=f"job: {job.n_in} tokens in, {job.n_out} out, {job.reps} reps after {job.warmup} "
        "warm-up; medians (min–max); rates from the engine's timings",
    )
    client_view = False
    for lane in lanes:
        s = lane.summary
        load = f"{lane.load_s:.1f} s" if lane.load_s is not None else "–"
        prefill, decode = s.get(Fig.PREFILL), s.get(Fig.DECODE)
        busy = lane.busy.figures if lane.busy else None
        cells = [
            fig_cell(lane, Fig.PREFILL),
            fig_cell(lane, Fig.DECODE),
            fig_cell(lane, Fig.NORMALIZED_WALL),
        ]
        client = (Fig.PREFILL_CLIENT, Fig.DECODE_CLIENT)
        cp, cd = (s.get(k) for k in client)
        if prefill is None and decode is None and cp is not None and cd is not None:
            # an engine that reports no timings of its own: the client's view, marked as such
            client_view = True
            wall = job.n_in / cp.median + job.n_out / cd.median
            cells = [
                *(f"{fmt_stat(s.get(k), FIGURES[k].unit)} [client]{busy_mark(busy, k)}" for k in client),
                f"{wall:.1f} s [client]{busy_mark(busy, Fig.DECODE_CLIENT)}",
            ]
        table.rows.append([lane_cell(lane), load, *cells, fig_cell(lane, Fig.AGGREGATE), lane_notes(lane)])
    if client_view:
        table.caption += (
            "; [client]: the client's view (time to first token, stream rate) where the engine "
            "reports no timings"
        )
    table.caption += busy_caption(any_busy(lanes))
    return table


def draft_acceptance(lanes: Sequence[LaneResult]) -> Table | None:
    """Acceptance of every lane that asked for drafting; None when no lane did."""
    drafting = [lane for lane in lanes if lane.lane.draft is not None]
    if not drafting:
        return None
    table = Table(
        title="Draft Acceptance",
        headers=[
            "Lane",
            "Draft",
            "Block size",
            "Acceptance",
            "Mean accepted length",
            "Per position",
            "Decode",
        ],
        caption="acceptance = Σ draft_n_accepted / Σ draft_n; mean length = tokens per verification step",
    )
    if any(lane.lane.emulated for lane in drafting):
        table.caption += "; [emulated]: the build accepted drafts at random at the lane's asked rates"
    for lane in drafting:
        d = lane.lane.draft
        assert d is not None
        s = lane.summary
        acc = acceptance_cell(lane)
        per_pos = " ".join(f"{p:.2f}" for p in lane.per_position) or "–"
        table.rows.append(
            [
                lane_cell(lane),
                f"{d.kind}: {basename(d.path) if d.path else 'its own model'}",
                str(d.block_size),
                acc,
                fmt_stat(s.get(Fig.MEAN_ACCEPTED_LENGTH), digits=2),
                per_pos,
                fig_cell(lane, Fig.DECODE),
            ]
        )
    table.caption += busy_caption(any_busy(drafting))
    return table


def acceptance_cell(lane: LaneResult) -> str:
    """A drafting lane's acceptance; where the lane has none of its own (an envelope with no
    one-stream cell has it per cell; a server whose responses carry no draft counts) it says so,
    and "none drafted" only when the server's counters saw no drafts either."""
    if lane.lane.draft is None:
        return "–"
    acc = lane.summary.get(Fig.ACCEPTANCE)
    if acc is not None:
        return f"{fmt_pct(acc)} {EMULATED_MARK}" if lane.lane.emulated else fmt_pct(acc)
    if lane.status == LaneStatus.FAILED:
        return "–"
    if any(c.acceptance is not None for c in lane.envelope):
        return "per cell: see the lane's envelope (no one-stream cell)"
    if lane.summary.get(Fig.MEAN_ACCEPTED_LENGTH) is not None or lane.per_position:
        return "– (drafted: the server's counters; its responses carry no draft counts)"
    return "⚠ none drafted"


def basename(path: Any) -> str:
    """The file name of a path as stored (either slash); '' for None."""
    return str(path or "").replace("\\", "/").rsplit("/", 1)[-1]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    """A GitHub/Reddit markdown table with its title as a heading."""
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"_{table.caption}_"]
    return "\n".join(lines) + "\n"


def to_rich(table: Table) -> RichTable:
    """The same table for the terminal."""
    rt = RichTable(title=Text(table.title), caption=Text(table.caption) if table.caption else None)
    last = len(table.headers) - 1
    for i, h in enumerate(table.headers):
        longest = max((len(row[i]) for row in table.rows if i < len(row)), default=0)
        if i == last or longest > 60:  # prose (notes, "within noise: ..."): folded, never squeezed out
            rt.add_column(h, overflow="fold", ratio=1, min_width=20)
        else:
            rt.add_column(
                h,
                justify="left" if i == 0 else "right",
                max_width=44 if i == 0 else None,
                min_width=min(longest, 12),  # a short column (depth, streams) keeps its figures
                no_wrap=i > 0,
            )
    for row in table.rows:
        rt.add_row(*(Text(c) for c in row), style="red" if any("FAILED" in c for c in row) else None)
    return rt
