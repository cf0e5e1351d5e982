"""The SQLite store through the Sink protocol: round trip, commit per sample, resume, bad input."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.errors import BadInput
from lanebench.measure.job import summarize
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.placement import PlacementRecord, RpcDevice, RpcProbe
from lanebench.records.request import SentRequest
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord
from lanebench.store import StoreBusy, open_store, schema
from lanebench.store.db import resolve_url
from lanebench.store.sink import StoreSink

JOB = JobSpec(n_in=100, n_out=20, reps=2, warmup=1, aggregate=2)


def make_run(run_id: str = "20260101-000000-abcd", host: str = "box") -> RunInfo:
    return RunInfo(
        run_id=run_id,
        started_at="2026-01-01T00:00:00+00:00",
        lanebench_version="0.1.0",
        job=JOB,
        host={"hostname": host, "cpu": "Test CPU", "cpus": 2},
        builds={"/bin/llama-server": {"version_text": "version: 1 (build 11434)", "build": 11434}},
    )


def request(kind: str, rep: int, prefill: float, decode: float, idx: int = 0) -> RequestRecord:
    return RequestRecord(
        kind=kind,  # type: ignore[arg-type]
        rep=rep,
        n_in=JOB.n_in,
        n_out=JOB.n_out,
        t_start=1_700_000_000.0 + rep,
        ttft_s=JOB.n_in / prefill,
        wall_s=JOB.n_in / prefill + JOB.n_out / decode,
        stream_tokens=JOB.n_out,
        decode_stream_s=(JOB.n_out - 1) / decode,
        timings={
            "prompt_n": JOB.n_in,
            "prompt_ms": 1000 * JOB.n_in / prefill,
            "prompt_per_second": prefill,
            "predicted_n": JOB.n_out,
            "predicted_ms": 1000 * JOB.n_out / decode,
            "predicted_per_second": decode,
            "draft_n": 10,
            "draft_n_accepted": 7,
        },
        content_sha="ab" * 32,
        stream_index=idx,
        stream_chunks=JOB.n_out // 2,  # two tokens a chunk: every count survives the store
        first_tokens=2,
        token_count="running",
    )


def measure_lane(sink: StoreSink, run: RunInfo, name: str, *, fail: bool = False) -> LaneResult:
    """Feed one lane through the sink exactly as the runner does."""
    lane = LaneResult(name=name, lane=LaneSpec(name=name, kv="f16", slots=2, model="/m/x.gguf"))
    sink.lane_started(run, lane)
    recs: list[RequestRecord | AggregateRecord] = [request("warmup", 0, 500, 50)]
    recs += [request("single", r, 500 + 10 * r, 50 + r) for r in range(JOB.reps)]
    for r in range(JOB.reps):
        recs += [request("aggregate", r, 400, 40, i) for i in range(2)]
        recs.append(AggregateRecord(rep=r, streams=2, wall_s=1.0 + r, tokens=40))
    for rec in recs:
        (lane.samples if isinstance(rec, RequestRecord) else lane.aggregates).append(rec)  # type: ignore[arg-type]
        sink.sample(run, lane.name, rec)
    lane.load_s = 1.25
    lane.argv = ["/bin/llama-server", "-m", "/m/x.gguf"]
    lane.metrics_delta = {"spec_decode_num_drafts_total": 4.0}
    lane.request = SentRequest("/completion", {"prompt": "<prompt: 64 tokens>"}, [])
    if fail:
        lane.status, lane.error = LaneStatus.FAILED, "engine died (exit 134)"
        lane.log_tail = "line 1\nGGML_ASSERT boom"
    summarize(lane, JOB)
    sink.lane_finished(run, lane)
    return lane


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "results.sqlite")


def test_round_trip_rebuilds_every_lane_exactly(db: str) -> None:
    store = open_store(db)
    run = make_run()
    sink = StoreSink(store)
    sink.run_started(run)
    lanes = [measure_lane(sink, run, "plain"), measure_lane(sink, run, "broken", fail=True)]
    run.status, run.finished_at = "failed", "2026-01-01T00:10:00+00:00"
    sink.run_finished(run)

    again = open_store(db)  # a fresh connection: everything was committed
    assert again.get_run(run.run_id).to_dict() == run.to_dict()
    loaded = again.load_lanes(run.run_id)
    assert [lane.to_dict() for lane in loaded] == [lane.to_dict() for lane in lanes]
    assert loaded[1].log_tail.endswith("GGML_ASSERT boom")
    assert again.finished_lane_names(run.run_id) == {"plain", "broken"}


def test_every_sample_is_committed_as_it_arrives_and_unfinished_lanes_are_discarded(db: str) -> None:
    store = open_store(db)
    run = make_run()
    sink = StoreSink(store)
    sink.run_started(run)
    measure_lane(sink, run, "done")
    lane = LaneResult(name="killed", lane=LaneSpec(name="killed"))
    sink.lane_started(run, lane)
    for r in range(3):
        sink.sample(run, lane.name, request("single", r, 500, 50))

    reader = open_store(db)  # as after kill -9: no lane_finished, no run_finished
    assert reader.finished_lane_names(run.run_id) == {"done"}
    with reader.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(schema.samples)).scalar_one()
    assert n == 1 + JOB.reps + JOB.reps * 2 + 3
    partial = next(x for x in reader.load_lanes(run.run_id) if x.name == "killed")
    assert partial.status == "failed" and "never finished" in (partial.error or "")
    assert len(partial.samples) == 3

    reader.discard_unfinished(run.run_id)
    assert [x.name for x in reader.load_lanes(run.run_id)] == ["done"]
    with reader.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(schema.samples)).scalar_one()
    assert n == 1 + JOB.reps + JOB.reps * 2


def test_run_started_again_resumes_the_same_run(db: str) -> None:
    store = open_store(db)
    run = make_run()
    first = StoreSink(store)
    first.run_started(run)
    measure_lane(first, run, "a")
    run.status = "interrupted"
    first.run_finished(run)

    resumed = store.get_run(run.run_id)
    assert resumed.status == "interrupted"
    second = StoreSink(store)
    second.run_started(resumed)  # idempotent for a stored run id
    measure_lane(second, resumed, "b")
    assert [x.name for x in store.load_lanes(run.run_id)] == ["a", "b"]
    assert store.get_run(run.run_id).status == "running"
    assert len(store.list_runs()) == 1


def test_list_runs_counts_lanes_and_names_host_and_build(db: str) -> None:
    store = open_store(db)
    sink = StoreSink(store)
    old, new = make_run("20260101-000000-aaaa", "alpha"), make_run("20260102-000000-bbbb", "beta")
    new.started_at = "2026-01-02T00:00:00+00:00"
    for run in (old, new):
        sink.run_started(run)
    measure_lane(sink, new, "ok")
    measure_lane(sink, new, "bad", fail=True)
    rows = store.list_runs()
    assert [r["run_id"] for r in rows] == [new.run_id, old.run_id]
    assert rows[0]["host"] == "beta" and rows[0]["build"] == "b11434"
    assert (rows[0]["lanes"], rows[0]["lanes_failed"], rows[1]["lanes"]) == (2, 1, 0)


def test_unknown_run_id_is_one_clear_line(db: str) -> None:
    store = open_store(db)
    with pytest.raises(BadInput, match=r"^unknown run id 'nope' \(see lanebench runs\)$"):
        store.get_run("nope")
    with pytest.raises(BadInput, match="unknown run id"):
        store.load_lanes("nope")


def test_database_from_a_newer_lanebench_is_refused(db: str) -> None:
    open_store(db)
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(BadInput, match="schema version 99, written by a newer lanebench"):
        open_store(db)


def test_older_schema_is_migrated_in_order(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(db)
    ran: list[int] = []

    def next_one(conn: sa.Connection) -> None:
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN note TEXT"))
        ran.append(len(schema.MIGRATIONS))

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, next_one])
    open_store(db)
    open_store(db)  # already at the latest: nothing runs twice
    assert ran == [len(schema.MIGRATIONS)]
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta").fetchone() == (str(schema.latest_version()),)
    assert "note" in [r[1] for r in con.execute("PRAGMA table_info(runs)")]


def test_corrupt_file_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(BadInput, match=r"corrupt or not a SQLite file") as exc:
        open_store(str(bad))
    assert "\n" not in str(exc.value) and str(bad) in str(exc.value)


def test_someone_elses_sqlite_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(BadInput, match="no lanebench schema"):
        open_store(str(other))


def test_a_database_locked_too_long_is_one_clear_line(db: str) -> None:
    open_store(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = open_store(db, busy_timeout_s=0.2)
        with pytest.raises(StoreBusy, match="is locked by another writer") as exc:
            StoreSink(store).run_started(make_run())
        assert "\n" not in str(exc.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    StoreSink(open_store(db)).run_started(make_run())  # nothing was damaged


def _writer(db: str, run_id: str, n: int) -> None:
    store = open_store(db)
    run = make_run(run_id)
    sink = StoreSink(store)
    sink.run_started(run)
    lane = LaneResult(name="lane", lane=LaneSpec(name="lane"))
    sink.lane_started(run, lane)
    for i in range(n):
        sink.sample(run, lane.name, request("single", i, 500, 50))
    sink.lane_finished(run, lane)


def test_two_runs_writing_at_once_lose_nothing(db: str) -> None:
    open_store(db)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, f"run-{i}", 150)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    store = open_store(db)
    assert sorted(r["run_id"] for r in store.list_runs()) == ["run-0", "run-1"]
    for i in range(2):
        assert len(store.load_lanes(f"run-{i}")[0].samples) == 150


@pytest.mark.parametrize(
    ("url", "sa_url", "label"),
    [
        (
            "postgresql://u:secret@h:5432/db",
            "postgresql+psycopg://u:secret@h:5432/db",
            "postgresql://u@h:5432/db",
        ),
        ("postgres://h/db", "postgresql+psycopg://h/db", "postgres://h/db"),
    ],
)
def test_postgres_urls_use_psycopg_and_hide_the_password(url: str, sa_url: str, label: str) -> None:
    assert resolve_url(url) == (sa_url, label)


def test_default_location_follows_lanebench_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANEBENCH_DB", str(tmp_path / "env.sqlite"))
    store = open_store(None)
    assert store.label == str(tmp_path / "env.sqlite")
    assert (tmp_path / "env.sqlite").is_file()


def test_unsupported_url_names_the_flag() -> None:
    with pytest.raises(BadInput, match=r"^--db: unsupported database URL 'mysql://x/y'"):
        resolve_url("mysql://x/y")


def test_placement_is_stored_and_each_rpc_endpoint_fingerprinted(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lanebench.orchestration import fingerprint as fp

    monkeypatch.setattr(fp, "host_fingerprint", lambda: {"hostname": "box"})
    monkeypatch.setattr(fp, "model_fingerprint", lambda p: {"path": str(p)})
    store = open_store(db)
    run = make_run()
    from lanebench.orchestration.fingerprint_step import FingerprintSink

    stored = StoreSink(store)
    sinks = (stored, FingerprintSink(stored))  # the store keeps what the fingerprint step takes
    for sink in sinks:
        sink.run_started(run)
    lane = LaneResult(name="two boxes", lane=LaneSpec(name="two boxes", rpc=["10.0.0.2:50052"]))
    probe = RpcProbe("10.0.0.2:50052", False, "7.0.0", [RpcDevice(1.0, 2.0)], [0.2])
    lane.placement = PlacementRecord("layer", devices=["CUDA0", "RPC0"], rpc=[probe])
    for sink in sinks:
        sink.lane_started(run, lane)
        sink.lane_finished(run, lane)
    (loaded,) = open_store(db).load_lanes(run.run_id)
    assert loaded.placement == lane.placement
    with open_store(db).tx() as conn:
        rows = conn.execute(
            sa.select(schema.fingerprints.c.key, schema.fingerprints.c.data).where(
                schema.fingerprints.c.kind == "rpc"
            )
        ).all()
    assert [(r[0], r[1]["protocol"], r[1]["rtt_ms_median"]) for r in rows] == [
        ("10.0.0.2:50052", "7.0.0", 0.2)
    ]


def test_an_envelope_round_trips_cell_by_cell(db: str) -> None:
    """Schema 10: each request's cell, start offset and token arrivals, each batch's depth, the
    job's depths and concurrency levels and each lane's cell summaries come back as written."""
    from lanebench.records.envelope import CellSummary
    from lanebench.records.samples import Stat

    store = open_store(db)
    run = make_run("20260101-000000-env0")
    run.job = JobSpec(n_in=64, n_out=16, reps=2, depths=[0, 2048], concurrency=[1, 2], budget_s=300.0)
    sink = StoreSink(store)
    sink.run_started(run)
    lane = LaneResult(name="env", lane=LaneSpec(name="env", slots=2, model="/m/x.gguf"))
    sink.lane_started(run, lane)
    for i in range(2):
        rec = request("cell", 0, 500, 50, i)
        rec.depth, rec.concurrency, rec.start_offset_s = 2048, 2, 0.125 * i
        rec.arrivals = [[0.1, 1.0], [0.2, 2.0], [0.3, 4.0]]
        lane.samples.append(rec)
        sink.sample(run, lane.name, rec)
    batch = AggregateRecord(rep=0, streams=2, wall_s=1.5, tokens=32, depth=2048)
    lane.aggregates.append(batch)
    sink.sample(run, lane.name, batch)
    lane.envelope = [
        CellSummary(
            depth=2048, concurrency=2, reps=1, requests=2, decode=Stat(50.0, 49.0, 51.0, 2), kv_mib=12.5
        )
    ]
    sink.lane_finished(run, lane)

    again = open_store(db)
    assert again.get_run(run.run_id).job == run.job
    (back,) = again.load_lanes(run.run_id)
    assert back.envelope == lane.envelope
    assert [(s.depth, s.concurrency, s.start_offset_s, s.arrivals) for s in back.samples] == [
        (2048, 2, 0.0, [[0.1, 1.0], [0.2, 2.0], [0.3, 4.0]]),
        (2048, 2, 0.125, [[0.1, 1.0], [0.2, 2.0], [0.3, 4.0]]),
    ]
    assert back.aggregates[0].depth == 2048
    assert back.to_dict() == lane.to_dict()
