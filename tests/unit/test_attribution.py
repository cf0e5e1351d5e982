"""The attribution experiment's reading: the cause rule, what "Where the Time Goes" names from it,
the Attribution table, and the record's round trip through JSON and the store (schema 7)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.schema_history import SCHEMA_10

from lanebench.analysis.attribution import causes, conclude, drift, effects, separated
from lanebench.analysis.views import where_time_goes
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.measure.job import summarize
from lanebench.records.attribution import CONTROL, CONTROL_AFTER, Arm, AttributionRecord, Effect
from lanebench.records.baseline import BaselineRecord
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord, Stat

JOB = JobSpec(n_in=1000, n_out=100, reps=3, warmup=0, aggregate=0)


def req(ttft_s: float, prompt_ms: float = 250.0, decode_tps: float = 40.0, rep: int = 0) -> RequestRecord:
    t = {"prompt_n": 1000, "prompt_ms": prompt_ms, "prompt_per_second": 1e6 / prompt_ms, "predicted_n": 100,
         "predicted_ms": 100_000 / decode_tps, "predicted_per_second": decode_tps}  # fmt: skip
    return RequestRecord(
        kind="single", rep=rep, n_in=1000, n_out=100, timings=t, ttft_s=ttft_s,
        stream_tokens=100, decode_stream_s=99 / decode_tps, wall_s=ttft_s + 2.5,
    )  # fmt: skip


def arm(name: str, ttfts: list[float], decode: list[float] | None = None, change: str = "") -> Arm:
    decode = decode or [40.0] * len(ttfts)
    samples = [req(t, decode_tps=d, rep=i) for i, (t, d) in enumerate(zip(ttfts, decode, strict=True))]
    label = {"prompt_cache": "host-RAM prompt cache", "samplers": "the sampler chain"}.get(name, name)
    return Arm(name, label, change.split(), samples=samples)


def record() -> AttributionRecord:
    """Control: ~350 ms outside the prompt timer; the prompt cache's switch takes it to ~30 ms;
    the sampler chain's moves engine decode from ~40 to ~46 tok/s; idle slots moves nothing."""
    return AttributionRecord(
        n_in=1000,
        n_out=100,
        reps=3,
        warmup=1,
        arms=[
            arm(CONTROL, [0.60, 0.61, 0.59], [40.0, 40.5, 39.5]),
            arm("prompt_cache", [0.28, 0.285, 0.279], change="--cache-ram 0"),
            arm("idle_slots", [0.60, 0.58, 0.615], change="--no-cache-idle-slots"),
            arm("samplers", [0.60, 0.605, 0.595], [46.0, 46.5, 45.8], change="--samplers temperature"),
            arm(CONTROL_AFTER, [0.605, 0.595, 0.6], [40.2, 39.8, 40.1]),
        ],
        skipped=[["cache_reuse", "the lane does not enable it (--cache-reuse 0)"]],
    )


@pytest.mark.parametrize(
    ("a", "b", "moved"),
    [
        (Stat(10, 9, 11, 3), Stat(20, 19, 21, 3), True),
        (Stat(10, 9, 11, 3), Stat(12, 10.5, 13, 3), False),  # ranges touch: inside the noise
        (Stat(10, 9, 11, 3), Stat(10, 11, 11, 3), False),  # sharing an end point is an overlap
        (Stat(10, 9, 11, 2), Stat(20, 19, 21, 3), None),  # too few requests to tell
        (None, Stat(20, 19, 21, 3), None),
    ],
)
def test_the_cause_rule_is_ranges_that_do_not_overlap(a: Stat | None, b: Stat, moved: bool | None) -> None:
    assert separated(a, b) is moved


def test_effects_in_ms_per_request_and_percent() -> None:
    by = {(e.suspect, e.figure): e for e in effects(record())}
    cache = by[("prompt_cache", "outside_ms")]
    assert cache.control is not None and cache.control.n == 6  # control before and after, pooled
    assert cache.moved is True and cache.saved_ms == pytest.approx(350.0 - 30.0, abs=0.5)
    client = by[("prompt_cache", "client_prefill_tps")]
    assert client.change_pct == pytest.approx(100 * (0.6 / 0.28 - 1), rel=0.02) and client.moved
    assert by[("prompt_cache", "engine_prefill_tps")].moved is False  # the engine's timer did not move
    assert by[("idle_slots", "outside_ms")].moved is False
    decode = by[("samplers", "engine_decode_tps")]
    assert decode.moved and decode.saved_ms == pytest.approx(1000 * (100 / 40.05 - 100 / 46.0), rel=0.01)


def test_a_cause_is_named_only_where_its_switch_moved_the_figure() -> None:
    rec = record()
    assert [e.suspect for e in causes(rec, "prefill", "engine_to_client")] == ["prompt_cache"]
    assert [e.suspect for e in causes(rec, "decode", "kernel_to_engine")] == ["samplers"]
    assert causes(rec, "prefill", "kernel_to_engine") == []
    # the samplers' switch moved client decode too, but through the engine: not the stream's cause
    assert causes(rec, "decode", "engine_to_client") == []
    assert causes(None, "prefill", "engine_to_client") == []


def test_where_the_time_goes_names_what_the_experiment_showed() -> None:
    lane = LaneResult(name="L", lane=LaneSpec(name="L", slots=1), samples=record().arms[0].samples)
    summarize(lane, JOB)
    prefill, decode = where_time_goes(
        lane, JOB, BaselineRecord(prefill_tps=5000.0, decode_tps=50.0), "", record()
    )
    outside = next(c for c in prefill.causes if "outside the engine's prompt timer" in c)
    assert "host-RAM prompt cache: switching it off (--cache-ram 0) saved 320.0 ms per request" in outside
    assert "any rest unattributed" in outside
    kernel = next(c for c in decode.causes if c.startswith("kernel → engine"))
    assert "the sampler chain: switching it off (--samplers temperature) saved" in kernel
    assert (
        "kernel → engine: unattributed (3 suspect(s) tested, none moved it beyond the noise)"
        in prefill.causes
    )


def test_a_drifting_control_is_pooled_and_named() -> None:
    rec = record()
    rec.arms[-1] = arm(CONTROL_AFTER, [0.27, 0.275, 0.29])  # the machine changed meanwhile
    assert "ttft_ms" in drift(rec)
    # the pooled control now spans the variant's range: no cause
    assert causes(rec, "prefill", "engine_to_client") == []


def test_too_few_requests_name_nothing() -> None:
    rec = record()
    for a in rec.arms:
        a.samples = a.samples[:2]
    rec.arms = [a for a in rec.arms if a.name != CONTROL_AFTER]
    assert all(e.moved is None for e in effects(rec))
    assert causes(rec, "prefill", "engine_to_client") == []
    rec.reps = 2
    lane = LaneResult(name="L", lane=LaneSpec(name="L", slots=1), samples=record().arms[0].samples)
    summarize(lane, JOB)
    prefill, _ = where_time_goes(lane, JOB, None, "", rec)
    assert prefill.causes[0].endswith(
        "unattributed (3 suspect(s) tested with 2 request(s) each, fewer than the 3 the cause rule needs)"
    )


def test_the_record_round_trips_with_its_raw_samples() -> None:
    rec = conclude(record())
    d = rec.to_dict()
    assert [a["name"] for a in d["arms"]] == [
        CONTROL,
        "prompt_cache",
        "idle_slots",
        "samplers",
        CONTROL_AFTER,
    ]
    assert d["arms"][1]["change"] == ["--cache-ram", "0"] and len(d["arms"][1]["samples"]) == 3
    assert any(
        e["suspect"] == "prompt_cache" and e["figure"] == "outside_ms" and e["moved"] for e in d["effects"]
    )
    back = AttributionRecord.from_dict(d)
    assert back == rec and back.to_dict() == d
    assert all(type(e) is Effect for e in back.effects) and all(type(a) is Arm for a in back.arms)
    assert all(type(r) is RequestRecord for a in back.arms for r in a.samples)


def test_the_attribution_table_and_the_store(tmp_path: Path) -> None:
    from lanebench.records.run import RunInfo
    from lanebench.report.tables import to_markdown
    from lanebench.report.views import attribution_table, time_table
    from lanebench.store import open_store, schema
    from lanebench.store.sink import StoreSink

    lane = LaneResult(name="L", lane=LaneSpec(name="L", slots=1), samples=record().arms[0].samples)
    summarize(lane, JOB)
    lane.attribution = conclude(record())
    db = str(tmp_path / "r.sqlite")
    store = open_store(db)
    sink = StoreSink(store)
    run = RunInfo("r1", "2026-11-30T00:00:00+00:00", "t", JOB)
    sink.run_started(run)
    sink.lane_finished(run, lane)
    (back,) = store.load_lanes("r1")
    store.close()
    assert back.attribution == lane.attribution
    assert LaneResult.from_dict(lane.to_dict()).attribution == lane.attribution
    table = attribution_table([back])
    assert table is not None
    md = to_markdown(table)
    assert "| L | host-RAM prompt cache (--cache-ram 0) |" in md and "✔" in md
    assert "cache_reuse: not tested" in md
    times = time_table([back], JOB)  # an experiment alone shows the table, without a kernel column
    assert times is not None and "(see Attribution)" in times.caption
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta").fetchone() == (str(schema.latest_version()),)


def test_a_schema_6_database_gains_the_attribution_column(tmp_path: Path) -> None:
    from lanebench.store import open_store, schema

    db = tmp_path / "old.sqlite"
    open_store(str(db)).close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE lanes DROP COLUMN attribution")
    con.execute("ALTER TABLE samples DROP COLUMN token_ids")  # schema 8's, added after it
    for table in ("samples", "aggregates"):  # schema 9's
        for column in ("other_cores", "busy", "load"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("ALTER TABLE lanes DROP COLUMN busy")
    for table, column in SCHEMA_10:  # schema 10's
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    open_store(str(db)).close()
    con = sqlite3.connect(db)
    assert "attribution" in [r[1] for r in con.execute("PRAGMA table_info(lanes)")]
    assert con.execute("SELECT value FROM meta").fetchone() == (str(schema.latest_version()),)


def test_same_tokens_compares_each_prompt_with_the_control() -> None:
    from lanebench.analysis.attribution import same_tokens

    rec = record()
    for a in rec.arms:
        for r in a.samples:
            r.tokens_sha = f"sha{r.rep}"
    rec.arms[3].samples[1].tokens_sha = "other"  # the samplers' arm, second prompt
    assert same_tokens(rec, rec.arms[1]) is True and same_tokens(rec, rec.arms[3]) is False
    rec.arms[2].samples = []
    assert same_tokens(rec, rec.arms[2]) is None
    assert conclude(rec).to_dict()["same_tokens"] == {
        "prompt_cache": True,
        "idle_slots": None,
        "samplers": False,
    }
