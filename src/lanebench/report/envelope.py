"""The operating envelope as tables (pure: lane results in, ``Table`` rows of strings out).

- one **envelope table per lane**: a row per cell (context depth x streams) with each stream's
  prefill and decode, the steady-state aggregate decode, time to first token p50 / p95, requests
  per minute, acceptance (drafting lanes), the KV the cell's conversations occupy, the kernel view
  at the depth when measured;
- the **batch throughput** table: the seed report's N-slot aggregate at each cell (generated
  tokens over the batch's wall, *prefill included*), in a table of its own so that it is never
  read beside decode as the same kind of figure;
- **where each lane wins**: per cell and figure the fastest lane, its margin over the runner-up
  with the margin's range, or "within noise" (``analysis.winners``, ``analysis.noise``'s rule);
- the **crossovers** in words, from decided cells only.

A run shows them only when a lane's envelope holds more than the standard job's one cell (depth
0, one stream): a plain run's report is unchanged. Emulated lanes carry ``[emulated]``; a cell
with batches measured on a busy machine (the envelope keeps them: it does not re-measure) marks
its figures ``[busy k/n]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanebench.analysis.winners import FIGURES, CellWinner, crossovers, winner_map
from lanebench.config.job import JobSpec
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.samples import Stat
from lanebench.report.fmt import Table
from lanebench.report.tables import EMULATED_NOTE, fmt_stat, lane_cell

PLAIN_CELL = (0, 1)  # the standard job's one cell: a run with only this one has no envelope to show
BUSY_CELL_CAPTION = (
    "[busy k/n]: k of the cell's n batches ran while other processes kept the machine busy (the "
    "envelope keeps them, it does not re-measure): the figure is partly the busy machine's"
)


def shows_envelope(lane: LaneResult) -> bool:
    """Whether the lane's envelope has more to show than the standard job's one cell."""
    return any(c.key != PLAIN_CELL for c in lane.envelope)


def envelope_lanes(lanes: Sequence[LaneResult]) -> list[LaneResult]:
    """The lanes with an envelope to show, in the run's order."""
    return [lane for lane in lanes if shows_envelope(lane)]


def fmt_depth(depth: int) -> str:
    """``6,000``: tokens of conversation the server held."""
    return f"{depth:,}"


def fmt_streams(n: int) -> str:
    return f"{n} stream{'s' if n != 1 else ''}"


def busy_cell_mark(cell: CellSummary) -> str:
    """`` [busy k/n]`` when k of the cell's n batches were measured on a busy machine."""
    return f" [busy {cell.busy}/{cell.reps}]" if cell.busy else ""


def _seconds(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def ttft_text(cell: CellSummary) -> str:
    """``0.123 / 0.456 s`` (p50 / p95); ``–`` without requests."""
    if cell.ttft_p50 is None:
        return "–"
    return f"{_seconds(cell.ttft_p50)} / {_seconds(cell.ttft_p95)} s"


def _acceptance(lane: LaneResult, cell: CellSummary) -> str:
    if cell.acceptance is None:
        return "⚠ none drafted" if cell.requests else "–"
    return f"{100 * cell.acceptance:.1f}%" + (" [emulated]" if lane.lane.emulated else "")


def cell_notes(cell: CellSummary) -> str:
    """What a reader must know about one cell: prefix not reused, failures, a busy machine."""
    parts = list(cell.notes)
    if cell.depth > 0 and cell.requests and not cell.reused:
        parts.append(
            f"⚠ prefix reused by {cell.reuse_ok} of {cell.requests} requests (fewest cached: "
            f"{cell.reuse_min}): not all at this depth"
        )
    if cell.failed:
        parts.append(f"⚠ {cell.failed} request(s) failed")
    if cell.busy:
        parts.append(f"busy machine: {cell.busy} of {cell.reps} batches")
    return "; ".join(parts)


def _kernel(cell: CellSummary) -> str:
    if cell.kernel_prefill is None and cell.kernel_decode is None:
        return "–"
    pp = "–" if cell.kernel_prefill is None else f"{cell.kernel_prefill:.1f}"
    tg = "–" if cell.kernel_decode is None else f"{cell.kernel_decode:.1f}"
    return f"{pp} / {tg} tok/s"


def lane_envelope_table(lane: LaneResult, job: JobSpec) -> Table:
    """One lane's cells: Depth · Streams · Prefill · Decode per stream · Aggregate decode (steady
    state) · TTFT p50 / p95 · Requests/min · [Acceptance] · KV in use · [Kernel] · Notes."""
    drafting = lane.lane.draft is not None
    kernel = any(c.kernel_prefill is not None or c.kernel_decode is not None for c in lane.envelope)
    headers = [
        "Depth",
        "Streams",
        f"Prefill, {job.n_in} new tokens",
        "Decode per stream",
        "Aggregate decode, steady state",
        "TTFT p50 / p95",
        "Requests/min",
    ]
    headers += ["Acceptance"] if drafting else []
    headers += ["KV in use"] + (["Kernel pp / tg"] if kernel else []) + ["Notes"]
    failed = " (failed: the cells it measured)" if lane.status == LaneStatus.FAILED else ""
    title = f"Envelope: {lane_cell(lane)}{failed}"
    table = Table(title=title, headers=headers, caption=_lane_caption(job, kernel))
    for c in lane.envelope:
        busy = busy_cell_mark(c)
        row = [
            fmt_depth(c.depth),
            str(c.concurrency),
            fmt_stat(c.prefill, "tok/s") + (busy if c.prefill else ""),
            fmt_stat(c.decode, "tok/s") + (busy if c.decode else ""),
            fmt_stat(c.aggregate, "tok/s") + (busy if c.aggregate else ""),
            ttft_text(c),
            "–" if c.requests_per_min is None else f"{c.requests_per_min:.1f}",
        ]
        row += [_acceptance(lane, c)] if drafting else []
        row += ["–" if c.kv_mib is None else f"{c.kv_mib:,.1f} MiB"]
        row += [_kernel(c)] if kernel else []
        table.rows.append([*row, cell_notes(c)])
    if lane.lane.emulated:
        table.caption += f"; [emulated]: {EMULATED_NOTE}"
    if any(c.busy for c in lane.envelope):
        table.caption += f"; {BUSY_CELL_CAPTION}"
    return table


def _lane_caption(job: JobSpec, kernel: bool) -> str:
    text = (
        f"each request continues a conversation of Depth tokens the server already holds (its prefix "
        f"from the slot's cache, checked per request by timings.cache_n), with {job.n_in} new tokens "
        f"in and {job.n_out} out; Streams: requests at once, each in a slot of its own; medians "
        "(min–max) over streams x batches; prefill and decode per stream from the engine's timings; "
        "aggregate decode: tokens generated while every stream was decoding, over that window (one "
        "sample per batch; with one stream, the stream's own client-side rate); TTFT p50 / p95: "
        "time to first token as the client saw it (s); requests/min over the cell's batch walls; "
        "KV in use: the cache the cell's conversations occupy, from the server log's sizes"
    )
    if kernel:
        text += "; kernel: llama-bench, no server (pp of the new tokens, tg after them, at the depth)"
    return text


def nslot_table(lanes: Sequence[LaneResult]) -> Table | None:
    """The N-slot aggregate of every cell, per lane: prefill included, a table of its own."""
    shown = envelope_lanes(lanes)
    if not shown:
        return None
    keys = sorted({c.key for lane in shown for c in lane.envelope})
    table = Table(
        title="Batch Throughput, Prefill Included",
        headers=["Depth", "Streams", *(lane_cell(lane) for lane in shown)],
        caption="generated tokens of a batch over the batch's whole wall, every stream's prefill "
        "included (the seed report's N-slot aggregate, at each cell); medians (min–max) over "
        "batches. Not a decode rate: for decode under load read the steady-state aggregate of the "
        "envelope tables",
    )
    by_lane = [{c.key: c for c in lane.envelope} for lane in shown]
    for key in keys:
        row = [fmt_depth(key[0]), str(key[1])]
        for cells in by_lane:
            c = cells.get(key)
            row.append("–" if c is None else fmt_stat(c.nslot_aggregate, "tok/s") + busy_cell_mark(c))
        table.rows.append(row)
    if any(c.busy for lane in shown for c in lane.envelope):
        table.caption += f"; {BUSY_CELL_CAPTION}"
    return table


def winner_text(w: CellWinner, unit: str = "") -> str:
    """``mtp 1.37× (1.20–1.52) over plain`` when decided; ``within noise: a, b (…test…)`` when the
    leader is not measurably ahead; ``a (only lane)`` with one lane; ``–`` with none."""
    if w.leader is None:
        return "–"
    if w.runner_up is None:
        return f"{w.leader} (only lane)"
    if not w.decided:
        test = f" ({w.verdict.test})" if w.verdict else ""
        return f"within noise: {', '.join([w.leader, *w.tied])}{test}"
    r = w.margin_range
    span = f" ({r[0]:.2f}–{r[1]:.2f})" if r else ""
    return f"{w.leader} {w.margin:.2f}×{span} over {w.runner_up}"


def _by_name(lanes: Sequence[LaneResult]) -> dict[str, list[CellSummary]]:
    """Lanes with an envelope, keyed by the name the tables show (``[emulated]`` after it)."""
    return {lane_cell(lane): lane.envelope for lane in envelope_lanes(lanes)}


def winners(lanes: Sequence[LaneResult]) -> dict[str, list[CellWinner]]:
    """Per winner figure (``analysis.winners.FIGURES``), every cell's verdict."""
    named = _by_name(lanes)
    return {key: winner_map(named, key) for key, *_ in FIGURES}


def _busy_in(named: dict[str, list[CellSummary]], cell: tuple[int, int]) -> bool:
    return any(c.busy for cells in named.values() for c in cells if c.key == cell)


def winner_table(lanes: Sequence[LaneResult]) -> Table | None:
    """Where each lane wins: a row per cell, a column per figure; None with fewer than two lanes."""
    named = _by_name(lanes)
    if len(named) < 2:
        return None
    maps = winners(lanes)
    table = Table(
        title="Where Each Lane Wins",
        headers=[
            "Depth",
            "Streams",
            *(f"{label} ({'higher' if hi else 'lower'} is better)" for _, label, _, hi, _ in FIGURES),
        ],
        caption="the fastest lane at each cell by median, and how many times faster than the "
        "runner-up (time to first token: the runner-up's time over the leader's) with the range of "
        "that margin over every pair of samples; a lane is named only when the two lanes' min–max "
        "ranges do not overlap and the samples make so complete a separation unlikely by chance "
        "(2 / C(n_a + n_b, n_a) <= 0.10), else within noise, with the lanes not measurably apart",
    )
    cells = [w.cell for w in maps[FIGURES[0][0]]]
    for i, cell in enumerate(cells):
        busy = " [busy]" if _busy_in(named, cell) else ""
        texts = [winner_text(maps[key][i]) + busy for key, *_ in FIGURES]
        table.rows.append([fmt_depth(cell[0]), str(cell[1]), *texts])
    if any(_busy_in(named, cell) for cell in cells):
        table.caption += "; [busy]: a lane's figure at the cell came partly from a busy machine's batches"
    return table


def crossover_table(lanes: Sequence[LaneResult]) -> Table | None:
    """The crossovers in words, per figure; None when no cell was decided."""
    if len(_by_name(lanes)) < 2:
        return None
    sentences = [s for ws in winners(lanes).values() for s in crossovers(ws)]
    if not sentences:
        return None
    return Table(
        title="Crossovers",
        headers=["What the envelope shows"],
        rows=[[s] for s in sentences],
        caption="from cells where a lane is measurably ahead only (see Where Each Lane Wins); a "
        "cell within noise names no lane",
    )


def envelope_tables(lanes: Sequence[LaneResult], job: JobSpec) -> list[Table]:
    """Every envelope table of one run's lanes; [] when no lane has an envelope to show."""
    shown = envelope_lanes(lanes)
    tables = [lane_envelope_table(lane, job) for lane in shown]
    optional = (nslot_table(lanes), winner_table(lanes), crossover_table(lanes))
    return tables + [t for t in optional if t is not None]


def envelope_doc(lanes: Sequence[LaneResult]) -> dict[str, Any] | None:
    """The winner map and crossovers for a JSON document; None without an envelope to show."""
    if not envelope_lanes(lanes):
        return None
    maps = winners(lanes)
    return {
        "winners": {key: [w.to_dict() for w in ws] for key, ws in maps.items()},
        "crossovers": [s for ws in maps.values() for s in crossovers(ws)],
    }


# CSV: one row per cell after its lane's row, these columns filled ---------------------------
_STATS = ("decode", "decode_client", "prefill", "ttft", "ttft_beyond", "aggregate", "nslot_aggregate")
_VALUES = (
    "ttft_p50",
    "ttft_p95",
    "requests_per_min",
    "acceptance",
    "kv_mib",
    "kernel_prefill",
    "kernel_decode",
    "reuse_ok",
    "reuse_min",
    "busy",
    "cache_s",
    "cache_events",
)
CSV_COLUMNS = (
    "cell_depth",
    "cell_concurrency",
    "cell_reps",
    "cell_requests",
    "cell_failed",
    *(f"cell_{s}_{part}" for s in _STATS for part in ("median", "min", "max", "n")),
    *(f"cell_{v}" for v in _VALUES),
)


def _stat_cells(s: Stat | None) -> list[Any]:
    return [s.median, s.min, s.max, s.n] if s else ["", "", "", ""]


def cell_csv(cell: CellSummary) -> list[Any]:
    """One cell's values in ``CSV_COLUMNS`` order ('' where not measured)."""
    out: list[Any] = [cell.depth, cell.concurrency, cell.reps, cell.requests, cell.failed]
    for s in _STATS:
        out += _stat_cells(getattr(cell, s))
    out += ["" if (v := getattr(cell, name)) is None else v for name in _VALUES]
    return out


def csv_cell_rows(lead: list[Any], width: int, lane: LaneResult) -> list[list[Any]]:
    """The lane's cells as CSV rows: ``lead`` (the lane's identity columns), blanks up to
    ``width`` (the lane row's other columns), then ``CSV_COLUMNS``."""
    blank = [""] * (width - len(lead))
    return [[*lead, *blank, *cell_csv(c)] for c in lane.envelope] if shows_envelope(lane) else []
