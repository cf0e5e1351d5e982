"""Time to first token beyond the engine's prompt timer, and the server's prompt-cache work that
its own log places inside a cell's batches (pure; the events come from ``server.cachelog``).

The rule that names the cause: in a cell whose requests waited at least ``MIN_BEYOND_S`` beyond
the prompt timer (median), the prompt cache is named when the work the log shows inside the cell's
batches, per batch, is at least ``SHARE`` of that median. The server does that work on its one loop
(no slot prefills or decodes meanwhile), so a request launched behind it waits for all of it.
A cell below the rule names nothing; its figures are still kept (``ttft_beyond``, ``cache_s``).

The log's clock is laid beside the requests' by pairing its task launches with the lane's requests
in order (``align``): only when the counts match (one launch per completion request), else nothing
is placed. A save runs at a task's launch, so it falls in the batch whose request launched it; an
event is placed in a batch up to ``SLACK_S`` before the batch's first request, the alignment's
tolerance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence

from lanebench.analysis import metrics as m
from lanebench.analysis.attribution import outside_ms
from lanebench.analysis.envelope import by_cell
from lanebench.records.envelope import CellSummary
from lanebench.records.samples import RequestRecord

MIN_BEYOND_S = 0.05
SHARE = 0.5
SLACK_S = 0.02

Event = tuple[float, float]  # (start, Unix seconds; seconds it took)


def batch_windows(records: Iterable[RequestRecord]) -> list[tuple[float, float]]:
    """Each batch's span in Unix seconds: its first request's start to its last request's end."""
    spans: dict[int, list[float]] = defaultdict(lambda: [float("inf"), float("-inf")])
    for r in records:
        if r.wall_s is None:
            continue
        span = spans[r.rep]
        span[0], span[1] = min(span[0], r.t_start), max(span[1], r.t_start + r.wall_s)
    return [(a, b) for a, b in spans.values() if b >= a]


def align(launches: Sequence[float], starts: Iterable[float]) -> float | None:
    """Seconds to add to the log's clock to get Unix time: the median, over the server's task
    launches paired in order with the requests' starts, of start − launch. None unless there is
    exactly one launch per request."""
    ordered = sorted(starts)
    if not ordered or len(ordered) != len(launches):
        return None
    diffs = sorted(t - launch for t, launch in zip(ordered, sorted(launches), strict=True))
    return diffs[len(diffs) // 2]


def work_inside(events: Sequence[Event], windows: Sequence[tuple[float, float]]) -> tuple[float, int]:
    """Seconds of the events that started inside any window (from ``SLACK_S`` before its start),
    and how many they were."""
    inside = [s for start, s in events if any(a - SLACK_S <= start <= b for a, b in windows)]
    return sum(inside), len(inside)


def cache_note(cell: CellSummary) -> str | None:
    """The cell's note when the rule names the prompt cache (see the module's docstring)."""
    beyond = cell.ttft_beyond
    if beyond is None or cell.cache_s is None or not cell.reps or beyond.median < MIN_BEYOND_S:
        return None
    per_batch = cell.cache_s / cell.reps
    if per_batch < SHARE * beyond.median:
        return None
    return (
        f"time to first token {beyond.median:.2f} s beyond the prompt timer (median); the server's log "
        f"shows {per_batch:.2f} s per batch of prompt-cache saves ({cell.cache_events} in "
        f"{cell.reps} batches): named, the host-RAM prompt cache"
    )


def add_cache_work(
    cells: Sequence[CellSummary],
    records: Iterable[RequestRecord],
    events: Sequence[Event] | None,
    logged: Collection[tuple[int, int]] | None = None,
) -> list[CellSummary]:
    """Fill each cell's ``ttft_beyond`` and, when the log had times (``events`` not None), its
    ``cache_s`` / ``cache_events`` and the naming note; ``logged``: the (depth, streams) cells
    the log's server run measured (None: every cell), the others get no cache work. Returns the
    cells the rule named it in."""
    grouped = by_cell(records)
    named = []
    for c in cells:
        recs = [r for r in grouped.get((c.depth, c.concurrency), []) if r.ok]
        c.ttft_beyond = m.stat(ms / 1e3 for r in recs if (ms := outside_ms(r)) is not None)
        if events is None or (logged is not None and (c.depth, c.concurrency) not in logged):
            continue
        c.cache_s, c.cache_events = work_inside(events, batch_windows(recs))
        if note := cache_note(c):
            c.notes.append(note)
            named.append(c)
    return named
