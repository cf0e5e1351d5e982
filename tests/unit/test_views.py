"""Where the time goes: kernel → engine → client losses, and causes only where data show them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.analysis.views import where_time_goes
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.measure.job import summarize
from lanebench.records.baseline import BaselineRecord
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord

JOB = JobSpec(n_in=1000, n_out=100, reps=2, warmup=0, aggregate=0)


def lane() -> LaneResult:
    samples = []
    for rep in range(2):
        t = {"prompt_n": 1000, "prompt_ms": 2500.0, "prompt_per_second": 400.0, "predicted_n": 100,
             "predicted_ms": 2500.0, "predicted_per_second": 40.0}  # fmt: skip
        samples.append(
            RequestRecord(
                kind="single",
                rep=rep,
                n_in=1000,
                n_out=100,
                timings=t,
                ttft_s=2.53,
                stream_tokens=100,
                decode_stream_s=99 / 39.0,
                wall_s=5.1,
            )
        )
    r = LaneResult(name="L", lane=LaneSpec(name="L", slots=1), samples=samples)
    summarize(r, JOB)
    return r


def test_losses_in_percent_and_ms_per_request() -> None:
    base = BaselineRecord(prefill_tps=500.0, decode_tps=50.0)
    prefill, decode = where_time_goes(lane(), JOB, base)
    pct, ms = prefill.kernel_to_engine
    assert pct == pytest.approx(20.0) and ms == pytest.approx(1000 * (1000 / 400 - 1000 / 500))
    pct, ms = decode.kernel_to_engine
    assert pct == pytest.approx(20.0) and ms == pytest.approx(1000 * (100 / 40 - 100 / 50))
    pct, ms = prefill.engine_to_client
    assert prefill.client_tps == pytest.approx(1000 / 2.53) and ms == pytest.approx(30.0)
    assert any(c.startswith("30.0 ms per request outside the engine's prompt timer") for c in prefill.causes)
    assert any("kernel → engine: unattributed" in c for c in decode.causes)


def test_causes_only_where_the_data_show_them() -> None:
    prefill, _ = where_time_goes(lane(), JOB, None, log_text="")
    assert not any("checkpoint" in c for c in prefill.causes)
    assert any(c.startswith("no kernel view") for c in prefill.causes)
    assert prefill.kernel_to_engine == (None, None)
    log = "slot x: created context checkpoint 1 of 8\nslot x: created context checkpoint 2 of 8\n"
    prefill, _ = where_time_goes(lane(), JOB, BaselineRecord(prefill_tps=500.0), log_text=log)
    assert "server log: 2 context checkpoint(s) created" in prefill.causes


def test_without_an_experiment_every_gap_is_unattributed() -> None:
    """The old text named HTTP, slot scheduling and sampling as the cause of the time outside the
    prompt timer, and the vocabulary's sampler of the kernel → engine loss, with no evidence."""
    prefill, decode = where_time_goes(lane(), JOB, BaselineRecord(prefill_tps=500.0, decode_tps=50.0))
    text = " ".join(prefill.causes + decode.causes)
    for guess in ("HTTP", "slot scheduling", "sampling", "streaming", "busy machine"):
        assert guess not in text
    assert (
        "30.0 ms per request outside the engine's prompt timer (time to first token − prompt_ms): "
        "unattributed" in prefill.causes
    )
    assert "kernel → engine: unattributed" in decode.causes
    assert (
        "engine → client: 2.5% (the client's token arrival rate against the engine's timer): unattributed"
        in decode.causes
    )


def test_the_kernel_view_round_trips_and_makes_a_table(tmp_path: Path) -> None:
    from lanebench.records.run import RunInfo
    from lanebench.report.fmt import Table
    from lanebench.report.tables import to_markdown
    from lanebench.report.views import time_table
    from lanebench.store import open_store
    from lanebench.store.sink import StoreSink

    r = lane()
    r.baseline = BaselineRecord(prefill_tps=500.0, decode_tps=50.0, n_prompt=1000, n_gen=100, reps=3)
    assert LaneResult.from_dict(r.to_dict()).baseline == r.baseline
    store = open_store(str(tmp_path / "r.sqlite"))
    sink = StoreSink(store)
    run = RunInfo("r1", "2026-11-30T00:00:00+00:00", "t", JOB)
    sink.run_started(run)
    sink.lane_finished(run, r)
    (back,) = store.load_lanes("r1")
    store.close()
    assert back.baseline == r.baseline
    table = time_table([back], JOB)
    assert isinstance(table, Table)
    md = to_markdown(table)
    assert (
        "| L | prefill | 500.0 tok/s | 400.0 tok/s |" in md
        and "| L | decode | 50.0 tok/s | 40.0 tok/s |" in md
    )
    assert "20.0% (500 ms)" in md
    assert time_table([lane()], JOB) is None  # no lane ran llama-bench


def test_an_engine_faster_than_its_kernels_is_flagged_as_an_inversion() -> None:
    prefill, decode = where_time_goes(
        lane(), JOB, BaselineRecord(prefill_tps=300.0, prefill_sd=5.0, decode_tps=45.0)
    )
    assert any(c.startswith("inversion: the engine's prefill is 33.3% faster") for c in prefill.causes)
    assert not any(c.startswith("inversion") for c in decode.causes)
    # within twice llama-bench's sd it is noise, not an inversion
    prefill, _ = where_time_goes(lane(), JOB, BaselineRecord(prefill_tps=390.0, prefill_sd=6.0))
    assert not any(c.startswith("inversion") for c in prefill.causes)


def test_a_build_without_llama_bench_gets_a_note(tmp_path: Path) -> None:
    from lanebench.config.run import RunConfig
    from lanebench.engines.base import LanePlan
    from lanebench.engines.llamacpp.engine import LlamaCpp
    from lanebench.orchestration.baseline_step import baseline_for

    server = tmp_path / "llama-server"
    server.write_text("#!/bin/sh\n")
    plan = LanePlan(
        LaneSpec(name="L"), LlamaCpp(), 512, str(server), server_bin=server, model=tmp_path / "m.gguf"
    )
    opts = RunConfig(out_dir=tmp_path, baseline=True).with_job(JOB)
    rec = baseline_for(plan, opts, {})
    assert rec is not None and rec.decode_tps is None and rec.note.startswith("no llama-bench beside")
    assert baseline_for(plan, RunConfig(out_dir=tmp_path).with_job(JOB), {}) is None  # not asked for


def test_the_servers_own_cache_update_timer_is_shown_as_measured() -> None:
    log = (
        "0.09.800.181 I srv  get_availabl: prompt cache update took 6.56 ms\n"
        "0.17.587.240 I srv  get_availabl: prompt cache update took 21.98 ms\n"
        "0.20.000.000 I srv  get_availabl: prompt cache update took 10.00 ms\n"
    )
    prefill, _ = where_time_goes(lane(), JOB, None, log_text=log)
    line = (
        "server log: its prompt cache update took 10.0 ms per task (median of 3, 6.6–22.0), "
        "before the prompt timer"
    )
    assert line in prefill.causes
