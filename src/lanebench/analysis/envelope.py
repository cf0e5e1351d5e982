"""The envelope's figures from its raw records (pure).

A cell's batches are ``concurrency`` streams started together; each stream's record keeps its
start within the batch (``start_offset_s``) and its token arrivals (``arrivals``: seconds after
its own start, tokens that arrived then). From them:

- the **steady-state window** of a batch runs from the moment the last stream got its first token
  to the moment the first stream got its last one: every stream is decoding throughout. Its
  aggregate decode is the tokens that arrived inside the window over the window's length;
- as a check of that count, each stream's own rate inside the window (its tokens there over the
  time from its last arrival at or before the window's start to its last arrival inside it),
  summed over the streams: the two agree when the counting is right (``aggregate_check`` keeps
  their ratio per batch);
- with one stream the window is its decode, so the aggregate is its client decode rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lanebench.analysis import metrics as m
from lanebench.records.envelope import CellKey, CellSummary
from lanebench.records.samples import AggregateRecord, RequestRecord

Arrivals = Sequence[Sequence[float]]  # [[seconds after the stream's start, tokens], ...]


@dataclass(frozen=True, slots=True)
class Window:
    """The steady-state window of one batch (seconds from the batch's start)."""

    start: float
    end: float
    tokens: int  # tokens of every stream that arrived inside (start, end]
    stream_rates: tuple[float, ...]  # each stream's own rate inside the window (tok/s)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def aggregate_tps(self) -> float:
        return self.tokens / self.seconds

    @property
    def check(self) -> float | None:
        """Steady aggregate over the per-stream rates summed (1 when the counting is right)."""
        total = sum(self.stream_rates)
        return self.aggregate_tps / total if total > 0 else None


def _absolute(offset: float, arrivals: Arrivals) -> list[tuple[float, int]]:
    return [(offset + float(t), int(k)) for t, k in arrivals if int(k) > 0]


def _stream_rate(times: list[tuple[float, int]], start: float, end: float) -> float | None:
    inside = [(t, k) for t, k in times if start < t <= end]
    before = [t for t, _ in times if t <= start]
    if not inside or not before:
        return None
    span = inside[-1][0] - before[-1]
    return sum(k for _, k in inside) / span if span > 0 else None


# tokens of the held prefix the server may evaluate again and the prefix still count as reused: on
# sliding-window models llama-server resumes from its context checkpoint, seen one token early
# (cache_n = d - 1, prompt_n = n_in + 1; b11434 on an H200) and up to 4 at depth = the window (the 270M)
REUSE_SLACK = 4


def steady_window(streams: Sequence[tuple[float, Arrivals]]) -> Window | None:
    """The window in which every stream of a batch was decoding; None when the streams' decodes
    do not overlap (or a stream brought no tokens)."""
    times = [_absolute(offset, arrivals) for offset, arrivals in streams]
    if not times or any(not t for t in times):
        return None
    start = max(t[0][0] for t in times)
    end = min(t[-1][0] for t in times)
    if end <= start:
        return None
    tokens = sum(k for t in times for when, k in t if start < when <= end)
    rates = tuple(r for t in times if (r := _stream_rate(t, start, end)) is not None)
    if tokens <= 0 or len(rates) != len(times):
        return None
    return Window(start, end, tokens, rates)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of the values; None when there are none."""
    xs = sorted(values)
    if not xs:
        return None
    rank = max(1, math.ceil(q / 100 * len(xs)))
    return xs[rank - 1]


def by_cell(records: Iterable[RequestRecord]) -> dict[CellKey, list[RequestRecord]]:
    """The measured requests (kind ``cell``) of each (depth, concurrency) cell."""
    cells: dict[CellKey, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.kind == "cell":
            cells[(r.depth, r.concurrency)].append(r)
    return cells


def _batches(records: Sequence[RequestRecord]) -> dict[int, list[RequestRecord]]:
    out: dict[int, list[RequestRecord]] = defaultdict(list)
    for r in records:
        out[r.rep].append(r)
    return out


def summarize_cell(
    depth: int, concurrency: int, records: Sequence[RequestRecord], batches: Sequence[AggregateRecord]
) -> CellSummary:
    """One cell's figures from its requests and batch records (see ``records.envelope``)."""
    ok = [r for r in records if r.ok]
    cell = CellSummary(depth, concurrency, reps=len(batches), requests=len(ok), failed=len(records) - len(ok))
    cell.decode = m.stat(m.engine_decode_tps(r) for r in ok)
    cell.decode_client = m.stat(m.client_decode_tps(r) for r in ok)
    cell.prefill = m.stat(m.engine_prefill_tps(r) for r in ok)
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    cell.ttft = m.stat(ttfts)
    cell.ttft_p50, cell.ttft_p95 = percentile(ttfts, 50), percentile(ttfts, 95)
    windows = []
    for batch in _batches(ok).values():
        if len(batch) == concurrency and all(r.arrivals for r in batch):
            w = steady_window([(r.start_offset_s, r.arrivals or []) for r in batch])
            if w is not None:
                windows.append(w)
    cell.aggregate = m.stat(w.aggregate_tps for w in windows)
    cell.aggregate_check = m.stat(w.check for w in windows)
    cell.nslot_aggregate = m.stat(m.aggregate_tps(list(batches)))
    wall = sum(b.wall_s for b in batches if b.ok)
    finished = sum(1 for r in ok)
    cell.requests_per_min = 60 * finished / wall if wall > 0 else None
    cell.acceptance = m.acceptance(ok)
    cached = [int(r.timings["cache_n"]) for r in ok if "cache_n" in r.timings]
    cell.reuse_ok = sum(1 for c in cached if depth - REUSE_SLACK <= c <= depth)
    cell.reuse_min = min(cached) if cached else None
    cell.busy = sum(1 for b in batches if b.load is not None and b.load.busy)
    return cell


def summarize_cells(
    records: Iterable[RequestRecord], batches: Iterable[AggregateRecord]
) -> list[CellSummary]:
    """Every cell of a lane, depth first then concurrency, from its raw records."""
    by_batch: dict[CellKey, list[AggregateRecord]] = defaultdict(list)
    for b in batches:
        if b.depth is not None:
            by_batch[(b.depth, b.streams)].append(b)
    cells = by_cell(records)
    return [summarize_cell(d, c, cells[(d, c)], by_batch.get((d, c), [])) for d, c in sorted(cells)]
