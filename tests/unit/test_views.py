"""Where the time goes: kernel → engine → client losses, and causes only where data show them."""

from __future__ import annotations

import pytest

from lanebench.engines.llamabench import BaselineRecord
from lanebench.lanes import LaneSpec
from lanebench.measure import summarize
from lanebench.records import JobSpec, LaneResult, RequestRecord
from lanebench.views import where_time_goes

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
    assert any("2 created (server log)" in c for c in prefill.causes)
