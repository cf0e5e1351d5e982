"""The envelope's planning and prompts (pure): slots follow concurrency, refusals name the numbers,
each stream's conversation is its own, KV in use from the log's caches."""

from __future__ import annotations

import pytest

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines.registry import get_engine
from lanebench.errors import BadInput
from lanebench.measure.workloads import Conversations
from lanebench.memory.logparse import KvCache, kv_caches, kv_in_use_mib
from lanebench.orchestration.envelope_step import envelope_flags, lane_for_job
from lanebench.records.envelope import CellSummary

ENVELOPE = JobSpec(n_in=64, n_out=16, depths=[0, 4096], concurrency=[1, 4])


def test_the_job_says_what_a_slot_must_hold() -> None:
    assert ENVELOPE.envelope and ENVELOPE.depth_levels == [0, 4096] and ENVELOPE.concurrency_levels == [1, 4]
    assert ENVELOPE.context_per_slot == 4096 + 4 + 64 + 16
    assert JobSpec(n_in=64, n_out=16).context_per_slot == 80 and not JobSpec().envelope


def test_slots_follow_the_widest_concurrency_unless_the_lane_sets_them() -> None:
    engine = get_engine("llama.cpp")
    assert lane_for_job(LaneSpec(name="a"), engine, ENVELOPE).slots == 4
    assert lane_for_job(LaneSpec(name="a", slots=8), engine, ENVELOPE).slots == 8
    with pytest.raises(BadInput, match=r"field 'slots' = 2: --concurrency 4 needs 4 slots"):
        lane_for_job(LaneSpec(name="a", slots=2), engine, ENVELOPE)
    assert lane_for_job(LaneSpec(name="a"), engine, JobSpec()).slots == 2  # the standard job: unchanged


def test_a_depth_needs_an_engine_that_continues_conversations() -> None:
    with pytest.raises(BadInput, match=r"--depth 4096: engine 'vllm' cannot continue a conversation"):
        lane_for_job(LaneSpec(name="a", engine="vllm"), get_engine("vllm"), ENVELOPE)


def test_each_stream_has_its_own_conversation_and_turns_avoid_the_cached_token() -> None:
    tokens = list(range(1000))
    conv = Conversations(tokens, n_in=10, streams=4, pad=4)
    assert conv.prefix(0, 5) == [0, 1, 2, 3, 4] and conv.prefix(1, 3) == [250, 251, 252]
    assert len(conv.prefix(2, 2500)) == 2500  # deeper than the corpus: it wraps around
    assert conv.prefix(0, 1200)[1000:1003] == [0, 1, 2]
    assert conv.pad(0) == [996, 997, 998, 999] and conv.pad(1) != conv.pad(0)
    first = conv.turn(0, 3)
    again = conv.turn(0, 3, avoid=first[0])
    assert len(again) == 10 and again[0] != first[0]


def test_kv_caches_of_an_iswa_model_and_what_a_cell_holds() -> None:
    log = "\n".join(
        [
            "llama_kv_cache_iswa: creating non-SWA KV cache, size = 8192 cells",
            "llama_kv_cache: size =   96.00 MiB (  8192 cells,   3 layers,  2/2 seqs), K (f16): ...",
            "llama_kv_cache_iswa: creating     SWA KV cache, size = 2048 cells",
            "llama_kv_cache: size =  120.00 MiB (  2048 cells,  15 layers,  2/2 seqs), K (f16): ...",
            "llama_kv_cache: size =    9.00 MiB (   512 cells,   2 layers,  1/1 seqs)",  # a draft's
        ]
    )
    caches = kv_caches(log)
    assert caches == [KvCache(96.0, 8192, 3, False), KvCache(120.0, 2048, 15, True)]
    assert kv_in_use_mib(caches, 4016, 2, 64, 16) == pytest.approx(96.0 * 8192 / 8192 + 120.0)
    assert kv_in_use_mib(caches, 0, 1, 64, 16) == pytest.approx(96.0 * 80 / 8192 + 120.0)
    assert kv_caches("llama_kv_cache: size =   12.00 MiB (  4096 cells,  18 layers,  1/1 seqs)") == [
        KvCache(12.0, 4096, 18, False)
    ]


def test_a_prefix_prefilled_again_is_flagged() -> None:
    ok = CellSummary(4096, 1, reps=3, requests=3, reuse_ok=3, reuse_min=4096)
    missed = CellSummary(4096, 2, reps=3, requests=6, reuse_ok=4, reuse_min=0)
    (flag,) = envelope_flags([ok, missed])
    assert "depth 4,096 x 2 stream(s) 2 of 6 requests found only 0 cached tokens" in flag
    assert envelope_flags([ok]) == []


def test_a_budget_chooses_reps_the_noise_rule_can_judge() -> None:
    """--budget: what the time left affords per cell, never fewer than 3 (two lanes of 2 reps
    each can never be told apart by the noise rule), never more than --max-reps."""
    import time

    from lanebench.measure.envelope import EnvelopeJob

    job = object.__new__(EnvelopeJob)
    job.job = JobSpec(reps=5, max_reps=8)
    now = time.monotonic()
    assert job._reps_for(1.0, 4, None) == 5  # no budget: the job's reps
    assert job._reps_for(10.0, 4, now + 10.0) == 3  # 2.5 s a cell for 10 s batches: still 3
    assert job._reps_for(1.0, 2, now + 100.0) == 8  # plenty: --max-reps
    assert 5 <= job._reps_for(1.0, 4, now + 20.0) <= 6  # 5 s a cell, 1 s a batch
