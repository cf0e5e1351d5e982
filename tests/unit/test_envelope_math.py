"""The envelope's figures from raw records: the steady-state window, a cell's summary (pure)."""

from __future__ import annotations

import pytest

from lanebench.analysis.envelope import percentile, steady_window, summarize_cell, summarize_cells
from lanebench.records.envelope import CellSummary
from lanebench.records.samples import AggregateRecord, RequestRecord


def arrivals(first: float, rate: float, n: int, per_chunk: int = 1) -> list[list[float]]:
    """``n`` tokens: ``per_chunk`` at ``first``, then ``per_chunk`` every ``per_chunk / rate`` s."""
    return [[first + i * per_chunk / rate, per_chunk] for i in range(n // per_chunk)]


def test_one_stream_window_is_its_decode() -> None:
    w = steady_window([(0.0, arrivals(0.5, 40.0, 41))])
    assert w is not None
    assert w.start == 0.5 and w.end == pytest.approx(1.5)
    assert w.tokens == 40 and w.aggregate_tps == pytest.approx(40.0)
    assert w.check == pytest.approx(1.0)


def test_two_streams_count_only_while_both_decode() -> None:
    # stream 0 decodes 0.2 s .. 2.2 s at 50 tok/s; stream 1 starts later: 0.7 s .. 1.7 s at 30 tok/s
    a = (0.0, arrivals(0.2, 50.0, 101))
    b = (0.1, arrivals(0.6, 30.0, 31))
    w = steady_window([a, b])
    assert w is not None and w.start == pytest.approx(0.7) and w.end == pytest.approx(1.7)
    # inside (0.7, 1.7]: 50 tokens of stream 0 and 30 of stream 1
    assert w.tokens == 80 and w.aggregate_tps == pytest.approx(80.0)
    assert sorted(w.stream_rates) == pytest.approx([30.0, 50.0])
    assert w.check == pytest.approx(1.0)


def test_chunks_of_several_tokens_count_as_tokens() -> None:
    w = steady_window(
        [(0.0, arrivals(0.0, 60.0, 60, per_chunk=3)), (0.0, arrivals(0.0, 60.0, 60, per_chunk=3))]
    )
    assert w is not None and w.aggregate_tps == pytest.approx(120.0)


def test_streams_that_never_decode_together_have_no_window() -> None:
    assert steady_window([(0.0, arrivals(0.0, 10.0, 5)), (2.0, arrivals(0.0, 10.0, 5))]) is None
    assert steady_window([(0.0, [])]) is None


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert percentile([], 50) is None


def cell_request(rep: int, stream: int, depth: int, cache_n: int, decode: float) -> RequestRecord:
    r = RequestRecord(
        kind="cell", rep=rep, n_in=64, n_out=20, stream_index=stream, depth=depth, concurrency=2
    )
    r.ttft_s = 0.1 * (stream + 1)
    r.arrivals = arrivals(r.ttft_s, decode, 20)
    r.stream_tokens, r.first_tokens = 20, 1
    r.decode_stream_s = 19 / decode
    r.timings = {"cache_n": cache_n, "prompt_n": 64, "prompt_per_second": 500.0,
                 "predicted_n": 20, "predicted_per_second": decode}  # fmt: skip
    return r


def test_a_cell_summarises_its_streams_batches_and_prefix_reuse() -> None:
    recs = [
        cell_request(rep, s, 4096, 4096 if (rep, s) != (1, 1) else 100, 40.0)
        for rep in range(2)
        for s in range(2)
    ]
    batches = [AggregateRecord(rep=r, streams=2, wall_s=2.0, tokens=40, depth=4096) for r in range(2)]
    cell = summarize_cell(4096, 2, recs, batches)
    assert (cell.reps, cell.requests, cell.failed) == (2, 4, 0)
    assert cell.decode is not None and cell.decode.median == 40.0 and cell.decode.n == 4
    assert (
        cell.aggregate is not None and cell.aggregate.n == 2 and cell.aggregate.median == pytest.approx(80.0)
    )
    assert cell.nslot_aggregate is not None and cell.nslot_aggregate.median == pytest.approx(20.0)
    assert cell.requests_per_min == pytest.approx(60 * 4 / 4.0)
    assert (cell.ttft_p50, cell.ttft_p95) == (pytest.approx(0.1), pytest.approx(0.2))
    # one request found only 100 of its 4096 tokens of conversation in the cache
    assert (cell.reuse_ok, cell.reuse_min, cell.reused) == (3, 100, False)


def test_cells_are_grouped_and_ordered_by_depth_then_concurrency() -> None:
    recs = [cell_request(0, 0, d, d, 40.0) for d in (4096, 0)]
    for r in recs:
        r.concurrency = 1
    recs.append(RequestRecord(kind="single", rep=0, n_in=64, n_out=20))  # not a cell: left out
    batches = [AggregateRecord(rep=0, streams=1, wall_s=1.0, tokens=20, depth=d) for d in (0, 4096)]
    batches.append(AggregateRecord(rep=0, streams=2, wall_s=1.0, tokens=40))  # the standard N-slot batch
    cells = summarize_cells(recs, batches)
    assert [c.key for c in cells] == [(0, 1), (4096, 1)] and all(c.reps == 1 for c in cells)


def test_a_prefix_resumed_a_token_early_is_reused_and_said_so() -> None:
    """llama-server resumes from its context checkpoint one token early on sliding-window models
    (an H200 run: cache_n = d - 1, prompt_n = n_in + 1): reused, with a note; a prefix short by
    more than REUSE_SLACK tokens was prefilled again and is flagged as not reused."""
    from lanebench.analysis.envelope import REUSE_SLACK
    from lanebench.orchestration.envelope_step import envelope_flags

    def cell(cache_n: int) -> CellSummary:
        recs = [cell_request(rep, s, 8192, cache_n, 40.0) for rep in range(2) for s in range(2)]
        batches = [AggregateRecord(rep=r, streams=2, wall_s=2.0, tokens=40, depth=8192) for r in range(2)]
        return summarize_cell(8192, 2, recs, batches)

    early, refilled = cell(8191), cell(8192 - REUSE_SLACK - 1)
    assert early.reused and early.reuse_min == 8191
    (note,) = envelope_flags([early])
    assert note.startswith("prefix reused with up to 1 token(s) of it evaluated again")
    assert not refilled.reused
    assert envelope_flags([refilled])[0].startswith("conversation prefix not reused: at depth 8,192")


def test_an_envelope_turn_counts_the_prompt_tokens_it_took_as_new() -> None:
    from lanebench.measure.job import _prompt_n

    turn = cell_request(0, 0, 8192, 8191, 40.0)
    turn.timings["prompt_n"] = 65  # n_in 64 + the one token of the prefix evaluated again
    assert _prompt_n(turn, 64) == 64
    single = RequestRecord(kind="single", rep=0, n_in=64, n_out=20)
    single.timings = {"prompt_n": 65}
    assert _prompt_n(single, 64) == 65
