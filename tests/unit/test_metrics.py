"""Metrics: pure functions from records to figures, the seed's arithmetic, /metrics parsing, flags."""

from __future__ import annotations

import pytest

from lanebench.analysis import metrics as m
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.measure.job import summarize
from lanebench.records.lane import LaneResult
from lanebench.records.samples import AggregateRecord, RequestRecord, Stat

# The seed post's "Latest Measured Numbers": (prefill tok/s, decode tok/s) -> normalized wall, 1150/2000.
SEED_ROWS = [
    ((1194.4, 59.4), 34.6),
    ((729.3, 71.4), 29.6),
    ((539.9, 45.6), 46.0),
    ((666.5, 25.7), 79.5),
    ((203.6, 19.1), 110.4),
    ((204.2, 11.0), 187.4),
]


@pytest.mark.parametrize(("rates", "wall"), SEED_ROWS, ids=[str(w) for _, w in SEED_ROWS])
def test_normalized_wall_reproduces_the_seed_table(rates: tuple[float, float], wall: float) -> None:
    prefill, decode = rates
    assert round(m.normalized_wall_s(1150, 2000, prefill, decode), 1) == wall


def test_normalized_wall_is_the_sum_of_both_phases() -> None:
    assert m.normalized_wall_s(100, 50, 100.0, 25.0) == pytest.approx(1.0 + 2.0)
    assert m.normalized_wall_s(0, 50, 100.0, 25.0) == pytest.approx(2.0)


@pytest.mark.parametrize(("p", "d"), [(0.0, 10.0), (10.0, 0.0), (-1.0, 10.0)])
def test_normalized_wall_refuses_non_positive_rates(p: float, d: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        m.normalized_wall_s(1150, 2000, p, d)


def test_stat_median_min_max() -> None:
    assert m.stat([3.0, 1.0, 2.0]) == Stat(median=2.0, min=1.0, max=3.0, n=3)
    assert m.stat([4.0, 1.0, 2.0, 3.0]) == Stat(median=2.5, min=1.0, max=4.0, n=4)
    assert m.stat([5]) == Stat(median=5.0, min=5.0, max=5.0, n=1)
    assert m.stat([None, 2.0, None]) == Stat(median=2.0, min=2.0, max=2.0, n=1)
    assert m.stat([]) is None
    assert m.stat([None]) is None
    assert m.stat(x for x in (1.0, 9.0)) == Stat(median=5.0, min=1.0, max=9.0, n=2)


def rec(
    timings: dict[str, object] | None = None,
    *,
    ok: bool = True,
    kind: str = "single",
    n_in: int = 1150,
    n_out: int = 2000,
    **kw: object,
) -> RequestRecord:
    r = RequestRecord(kind=kind, rep=0, n_in=n_in, n_out=n_out, ok=ok, **kw)  # type: ignore[arg-type]
    r.timings = dict(timings or {})
    return r


def test_acceptance_sums_over_records_not_a_mean_of_ratios() -> None:
    a = rec({"draft_n": 10, "draft_n_accepted": 10})
    b = rec({"draft_n": 90, "draft_n_accepted": 0})
    assert m.acceptance([a, b]) == pytest.approx(10 / 100)  # a mean of ratios would say 0.5


def test_acceptance_ignores_failed_records_and_none_when_nothing_drafted() -> None:
    good = rec({"draft_n": 168, "draft_n_accepted": 157})
    failed = rec({"draft_n": 100, "draft_n_accepted": 0}, ok=False)
    assert m.acceptance([good, failed]) == pytest.approx(157 / 168)
    assert m.acceptance([rec({"predicted_n": 10})]) is None
    assert m.acceptance([]) is None
    assert m.acceptance([failed]) is None


def test_mean_accepted_length() -> None:
    assert m.mean_accepted_length(30, 10) == pytest.approx(4.0)
    assert m.mean_accepted_length(0, 10) == pytest.approx(1.0)
    assert m.mean_accepted_length(5, 0) is None


def test_engine_rates_come_from_timings_of_ok_records_only() -> None:
    r = rec({"prompt_per_second": 213.0, "predicted_per_second": 37.3})
    assert m.engine_prefill_tps(r) == 213.0 and m.engine_decode_tps(r) == 37.3
    bad = rec({"prompt_per_second": 213.0, "predicted_per_second": 37.3}, ok=False)
    assert m.engine_prefill_tps(bad) is None and m.engine_decode_tps(bad) is None
    assert m.engine_prefill_tps(rec({})) is None


def test_client_rates() -> None:
    r = rec(n_in=100, ttft_s=0.5, stream_tokens=11, decode_stream_s=2.0)
    assert m.client_prefill_tps(r) == pytest.approx(200.0)
    assert m.client_decode_tps(r) == pytest.approx(10 / 2.0)  # tokens after the first
    assert m.client_decode_tps(rec(stream_tokens=1, decode_stream_s=0.0)) is None
    assert m.client_prefill_tps(rec(ttft_s=None)) is None


def test_aggregate_tps_skips_failed_batches() -> None:
    batches = [
        AggregateRecord(rep=0, streams=2, wall_s=2.0, tokens=100),
        AggregateRecord(rep=1, streams=2, wall_s=2.0, tokens=100, ok=False, error="x"),
        AggregateRecord(rep=2, streams=2, wall_s=0.0, tokens=100),
    ]
    assert m.aggregate_tps(batches) == [50.0]


# The text layout of server_task_result_metrics::to_metrics (tools/server/server-task.cpp, b11434):
# HELP / TYPE / value per counter, then gauges, then the labelled per-position counter.
METRICS_TEXT = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 2332
# HELP llamacpp:prompt_tokens_cached_total Number of prompt tokens reused from the cache
# TYPE llamacpp:prompt_tokens_cached_total counter
llamacpp:prompt_tokens_cached_total 0
# HELP llamacpp:prompt_seconds_total Total time spent processing prompts
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 10.948
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 400
# HELP llamacpp:tokens_predicted_seconds_total Total time spent generating tokens
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 20.1234
# HELP llamacpp:n_decode_total Total number of llama_decode() calls, excluding speculative decoding
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 1.23457e+06
# HELP llamacpp:n_tokens_max Largest observed sequence length (prompt + generation)
# TYPE llamacpp:n_tokens_max counter
llamacpp:n_tokens_max 1366
# HELP llamacpp:spec_decode_num_draft_tokens_total Speculative: Total draft tokens generated
# TYPE llamacpp:spec_decode_num_draft_tokens_total counter
llamacpp:spec_decode_num_draft_tokens_total 168
# HELP llamacpp:spec_decode_num_accepted_tokens_total Speculative: Total draft tokens accepted
# TYPE llamacpp:spec_decode_num_accepted_tokens_total counter
llamacpp:spec_decode_num_accepted_tokens_total 157
# HELP llamacpp:spec_decode_num_drafts_total Speculative: Total speculative decoding verification steps
# TYPE llamacpp:spec_decode_num_drafts_total counter
llamacpp:spec_decode_num_drafts_total 42
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 213.004
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 19.8777
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 0
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode 1
# HELP llamacpp:spec_decode_num_accepted_tokens_per_pos_total Accepted tokens per draft position
# TYPE llamacpp:spec_decode_num_accepted_tokens_per_pos_total counter
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 42
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 40
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="2"} 39
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="3"} 36
"""


def test_parse_prometheus_reads_every_llamacpp_series() -> None:
    got = m.parse_prometheus(METRICS_TEXT)
    assert got["prompt_tokens_total"] == 2332
    assert got["prompt_seconds_total"] == pytest.approx(10.948)
    assert got["n_decode_total"] == pytest.approx(1.23457e6)
    assert got["n_tokens_max"] == 1366
    assert got["spec_decode_num_draft_tokens_total"] == 168
    assert got["spec_decode_num_accepted_tokens_total"] == 157
    assert got["spec_decode_num_drafts_total"] == 42
    assert got["predicted_tokens_seconds"] == pytest.approx(19.8777)
    assert got['spec_decode_num_accepted_tokens_per_pos_total{position="3"}'] == 36
    assert not any(k.startswith("llamacpp:") or k.startswith("#") for k in got)
    assert len(got) == 10 + 5 + 4  # counters, gauges, per-position series


def test_parse_prometheus_skips_other_and_broken_lines() -> None:
    text = "go_gc_duration_seconds 0.1\nllamacpp:bad value\n\nllamacpp:ok_total 3\n# comment\n"
    assert m.parse_prometheus(text) == {"ok_total": 3.0}
    assert m.parse_prometheus("") == {}


def test_counter_delta_takes_differences_of_total_series_only() -> None:
    before = m.parse_prometheus(METRICS_TEXT)
    after_text = (
        METRICS_TEXT.replace(
            "spec_decode_num_draft_tokens_total 168", "spec_decode_num_draft_tokens_total 268"
        )
        .replace("predicted_tokens_seconds 19.8777", "predicted_tokens_seconds 30")
        .replace('{position="0"} 42', '{position="0"} 52')
    )
    delta = m.counter_delta(before, m.parse_prometheus(after_text))
    assert delta["spec_decode_num_draft_tokens_total"] == 100
    assert delta['spec_decode_num_accepted_tokens_per_pos_total{position="0"}'] == 10
    assert delta["prompt_tokens_total"] == 0
    assert "predicted_tokens_seconds" not in delta  # a gauge
    assert "n_tokens_max" not in delta  # a maximum, not a *_total


def test_counter_delta_treats_series_new_after_the_job_as_starting_from_zero() -> None:
    before = {"prompt_tokens_total": 10.0}
    after = {"prompt_tokens_total": 15.0, 'spec_decode_num_accepted_tokens_per_pos_total{position="0"}': 4.0}
    assert m.counter_delta(before, after) == {
        "prompt_tokens_total": 5.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="0"}': 4.0,
    }
    assert m.counter_delta({}, {}) == {}


def test_per_position_acceptance_in_position_order() -> None:
    delta = {
        "spec_decode_num_drafts_total": 40.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="2"}': 10.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="0"}': 40.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="1"}': 30.0,
    }
    assert m.per_position_acceptance(delta) == [1.0, 0.75, 0.25]


def test_per_position_acceptance_on_the_real_layout() -> None:
    got = m.per_position_acceptance(m.parse_prometheus(METRICS_TEXT))
    assert got == pytest.approx([42 / 42, 40 / 42, 39 / 42, 36 / 42])


def test_per_position_acceptance_without_steps_is_empty() -> None:
    assert m.per_position_acceptance({}) == []
    assert m.per_position_acceptance({'spec_decode_num_accepted_tokens_per_pos_total{position="0"}': 3}) == []


# measure.summarize: figures and flags from records (pure)

JOB = JobSpec(n_in=256, n_out=16, reps=2, warmup=1, aggregate=0)


def single(prompt_n: int = 256, **timings: object) -> RequestRecord:
    t: dict[str, object] = {
        "prompt_n": prompt_n,
        "prompt_per_second": 200.0,
        "predicted_n": 16,
        "predicted_per_second": 20.0,
    }
    t.update(timings)
    return rec(t, n_in=256, n_out=16, wall_s=2.1, ttft_s=1.3, stream_tokens=16, decode_stream_s=0.75)


def lane_result(draft: bool, samples: list[RequestRecord]) -> LaneResult:
    lane = {"name": "L", "slots": 2, "notes": ""}
    lane["draft"] = {"kind": "model", "path": "/d.gguf", "block_size": 4} if draft else None
    return LaneResult(name="L", lane=LaneSpec.model_validate(lane), samples=samples)


def test_summarize_plain_lane_is_ok() -> None:
    r = lane_result(False, [single(), single(predicted_per_second=30.0)])
    summarize(r, JOB)
    assert r.status == "ok" and r.flags == []
    assert r.summary["decode_tps"] == Stat(median=25.0, min=20.0, max=30.0, n=2)
    assert r.summary["prefill_tps"].median == 200.0
    assert r.summary["normalized_wall_s"].max == pytest.approx(256 / 200 + 16 / 20)
    assert r.summary["normalized_wall_s"].min == pytest.approx(256 / 200 + 16 / 30)
    assert "acceptance" not in r.summary and "mean_accepted_length" not in r.summary


def test_summarize_uses_only_ok_single_records() -> None:
    warm = single(predicted_per_second=1.0)
    warm.kind = "warmup"
    r = lane_result(False, [warm, single()])
    summarize(r, JOB)
    assert r.summary["decode_tps"].n == 1 and r.summary["decode_tps"].median == 20.0


def test_summarize_drafting_lane_without_draft_n_is_flagged() -> None:
    r = lane_result(True, [single(), single()])
    log = "srv load: the draft model '/d.gguf' is not compatible with the target model\nother line\n"
    summarize(r, JOB, log)
    assert r.status == "flagged"
    (flag,) = r.flags
    assert flag.startswith("asked for drafting but the server drafted nothing (no draft_n in timings)")
    assert "is not compatible" in flag  # the reason from the log
    assert "acceptance" not in r.summary


def test_summarize_drafting_lane_with_drafts_has_acceptance() -> None:
    r = lane_result(True, [single(draft_n=30, draft_n_accepted=27), single(draft_n=30, draft_n_accepted=24)])
    r.metrics_delta = {
        "spec_decode_num_accepted_tokens_total": 51.0,
        "spec_decode_num_drafts_total": 20.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="0"}': 20.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="1"}': 18.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="2"}': 13.0,
    }
    summarize(r, JOB)
    assert r.status == "ok" and r.flags == []
    assert r.summary["acceptance"] == Stat(median=(0.9 + 0.8) / 2, min=0.8, max=0.9, n=2)
    assert r.summary["mean_accepted_length"].median == pytest.approx(1 + 51 / 20)
    assert r.per_position == pytest.approx([1.0, 0.9, 0.65])


def test_summarize_flags_prompt_length_mismatch() -> None:
    r = lane_result(False, [single(prompt_n=255), single()])
    summarize(r, JOB)
    assert r.status == "flagged"
    assert r.flags == ["engine processed 255 prompt tokens, not 256"]


def test_summarize_flags_failed_requests() -> None:
    bad = single()
    bad.ok, bad.error = False, "HTTP 500: boom"
    r = lane_result(False, [single(), bad])
    summarize(r, JOB)
    assert r.status == "flagged"
    assert r.flags == ["1 request(s) failed: HTTP 500: boom"]


def test_summarize_flags_more_concurrent_jobs_than_slots() -> None:
    job = JobSpec(n_in=256, n_out=16, reps=1, warmup=0, aggregate=4)
    r = lane_result(False, [single()])
    summarize(r, job)
    assert r.status == "flagged"
    assert r.flags == ["4 concurrent jobs on 2 slot(s): requests queued"]


def test_summarize_keeps_failed_status() -> None:
    r = lane_result(False, [])
    r.status, r.error = "failed", "lane 'L': llama-server died (exit code -9)"
    summarize(r, JOB)
    assert r.status == "failed"
    assert r.summary == {}


def test_summarize_flags_a_reply_cut_short() -> None:
    r = lane_result(False, [single(), single(predicted_n=9)])
    summarize(r, JOB)
    assert r.status == "flagged"
    assert any("generated 9 tokens, not 16" in f for f in r.flags)


def test_drafts_seen_only_in_counters_are_not_flagged_as_none() -> None:
    """vLLM without per-request stats reports its drafts only on /metrics."""
    r = lane_result(True, [single(), single()])
    r.metrics_delta = {"spec_decode_num_drafts_total": 40.0, "spec_decode_num_accepted_tokens_total": 30.0}
    summarize(r, JOB)
    assert not any("drafted nothing" in f for f in r.flags), r.flags
    r.metrics_delta = {}
    summarize(r, JOB)
    assert any("drafted nothing" in f for f in r.flags)


def test_every_measured_request_failing_fails_the_lane() -> None:
    bad = single()
    bad.ok, bad.error = False, "stream ended before the final chunk carrying usage"
    r = lane_result(False, [bad, bad])
    summarize(r, JOB)
    assert r.status == "failed"
    assert r.error is not None and "every measured request failed" in r.error
