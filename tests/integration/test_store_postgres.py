"""The same store on a real PostgreSQL server, started here (as the ``postgres`` user) and always
stopped. Skipped locally when PostgreSQL is not installed; required in CI.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import need
from tests.schema_history import SCHEMA_10
from tests.unit.test_store import _writer, make_run, measure_lane

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.errors import BadInput
from lanebench.records.attribution import Arm, AttributionRecord
from lanebench.records.lane import LaneResult
from lanebench.records.placement import PlacementRecord
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.records.request import SentRequest
from lanebench.records.run import RunInfo
from lanebench.records.samples import RequestRecord
from lanebench.store import open_store, schema
from lanebench.store.sink import StoreSink


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str]) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + argv, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        need("PostgreSQL server binaries not found (apt-get install postgresql)")
    assert bindir is not None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        need("runuser not found: cannot start PostgreSQL as a non-root user")
    base = Path(tempfile.mkdtemp(prefix="lanebench-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    init = _as_postgres(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    )
    assert init.returncode == 0, init.stderr[-2000:]
    port = _free_port()
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = _as_postgres(
        [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"]
    )
    try:
        assert start.returncode == 0, start.stderr + (base / "log").read_text(errors="replace")[-2000:]
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_pg(pg_url: str) -> str:
    """The server's database emptied of lanebench tables."""
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for table in reversed(schema.metadata.sorted_tables):  # every table lanebench makes
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name} CASCADE"))
    engine.dispose()
    return pg_url


def test_postgres_round_trip_matches_what_was_measured(fresh_pg: str) -> None:
    store = open_store(fresh_pg)
    run = make_run()
    sink = StoreSink(store)
    sink.run_started(run)
    lanes = [measure_lane(sink, run, "plain"), measure_lane(sink, run, "broken", fail=True)]
    run.status, run.finished_at = "failed", "2026-01-01T00:10:00+00:00"
    sink.run_finished(run)

    again = open_store(fresh_pg)
    assert again.label == fresh_pg  # no password to hide here
    assert again.get_run(run.run_id).to_dict() == run.to_dict()
    assert [x.to_dict() for x in again.load_lanes(run.run_id)] == [x.to_dict() for x in lanes]
    assert again.finished_lane_names(run.run_id) == {"plain", "broken"}
    assert again.list_runs()[0]["lanes_failed"] == 1


def test_postgres_resume_discards_the_unfinished_lane(fresh_pg: str) -> None:
    store = open_store(fresh_pg)
    run = make_run()
    sink = StoreSink(store)
    sink.run_started(run)
    measure_lane(sink, run, "done")
    from lanebench.config.lanes import LaneSpec
    from lanebench.records.lane import LaneResult

    sink.lane_started(run, LaneResult(name="killed", lane=LaneSpec(name="killed")))
    store.discard_unfinished(run.run_id)
    assert [x.name for x in store.load_lanes(run.run_id)] == ["done"]
    StoreSink(store).run_started(store.get_run(run.run_id))
    assert len(store.list_runs()) == 1


def test_postgres_two_writers_at_once_lose_nothing(fresh_pg: str) -> None:
    open_store(fresh_pg)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(fresh_pg, f"pg-run-{i}", 100)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    store = open_store(fresh_pg)
    assert [len(store.load_lanes(f"pg-run-{i}")[0].samples) for i in range(2)] == [100, 100]


def test_postgres_newer_schema_is_refused(fresh_pg: str) -> None:
    store = open_store(fresh_pg)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '42' WHERE key = 'schema_version'"))
    with pytest.raises(BadInput, match="written by a newer lanebench"):
        open_store(fresh_pg)


def test_postgres_schema_1_gains_quality_and_stores_it(fresh_pg: str) -> None:
    """The schema 1 -> 2 migration (quality table, samples.tokens_sha) in PostgreSQL's SQL."""
    open_store(fresh_pg).close()
    engine = sa.create_engine(fresh_pg.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE quality"))
        conn.execute(sa.text("ALTER TABLE samples DROP COLUMN tokens_sha"))
        conn.execute(sa.text("ALTER TABLE lanes DROP COLUMN memory"))  # schema 3
        conn.execute(sa.text("ALTER TABLE lanes DROP COLUMN baseline"))  # schema 4
        conn.execute(sa.text("ALTER TABLE lanes DROP COLUMN placement"))  # schema 5
        for column in ("stream_chunks", "first_tokens", "token_count"):  # schema 6
            conn.execute(sa.text(f"ALTER TABLE samples DROP COLUMN {column}"))
        conn.execute(sa.text("ALTER TABLE lanes DROP COLUMN request"))
        conn.execute(sa.text("ALTER TABLE lanes DROP COLUMN attribution"))  # schema 7
        conn.execute(sa.text("ALTER TABLE samples DROP COLUMN token_ids"))  # schema 8
        for table in ("samples", "aggregates"):  # schema 9
            for column in ("other_cores", "busy", "load"):
                conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(sa.text("ALTER TABLE lanes DROP COLUMN busy"))
        for table, column in SCHEMA_10:  # schema 10
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(sa.text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    engine.dispose()
    store = open_store(fresh_pg)
    sink = StoreSink(store)
    run = RunInfo("pgq", "2026-11-30T00:00:00+00:00", "t", JobSpec())
    sink.run_started(run)
    lane = LaneResult(name="q4", lane=LaneSpec(name="q4", kv="q4_0"))
    lane.placement = PlacementRecord(split_mode="row")  # schema 5's column, in PostgreSQL too
    lane.request = SentRequest(path="/v1/completions", body={"cache_prompt": False})  # schema 6
    lane.attribution = AttributionRecord(n_in=1, arms=[Arm(name="control")])  # schema 7's
    ids = [2, 105, 262143]  # schema 8: a sequential request's generated ids, for the greedy check
    sample = RequestRecord(kind="single", rep=0, n_in=1, n_out=1, tokens_sha="abc", stream_chunks=1)
    sample.token_ids = ids
    sample.first_tokens, sample.token_count = 1, "running"
    lane.samples.append(sample)
    sink.lane_started(run, lane)
    sink.sample(run, lane.name, lane.samples[0])
    lane.quality = QualityRecord(QualityStatus.MEASURED, "ref", 510, 512, kld_mean=0.114, kld_err=0.01)
    sink.lane_finished(run, lane)
    sink.lane_finished(run, lane)  # quality re-sent after the quality step: replaced, not duplicated
    (back,) = store.load_lanes("pgq")
    assert back.quality == lane.quality and back.samples[0].tokens_sha == "abc"
    assert back.placement == lane.placement and back.attribution == lane.attribution
    assert back.request == lane.request and back.samples[0] == lane.samples[0]
    store.close()
