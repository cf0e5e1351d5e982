"""The store as a sink: every event of a run is committed as soon as it happens, so a kill -9
loses at most the request in flight. Fingerprints arrive as data (``add_fingerprint``); the
store never runs a binary or reads a model to take one (``orchestration.fingerprint_step`` does).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lanebench.records.lane import LaneResult, LaneStatus, RunStatus
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord
from lanebench.store import rows, schema
from lanebench.store.delete import delete_lanes

T = schema


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Transactions(Protocol):
    """What the sink needs of a ``Store``: one short transaction at a time."""

    def tx(self) -> AbstractContextManager[Connection]: ...


class StoreSink:
    """Implements ``lanebench.store.sinks.Sink`` on a ``Store``."""

    def __init__(self, store: Transactions) -> None:
        self.store = store
        self._lane_ids: dict[str, int] = {}
        self._seq: dict[str, int] = {}

    # Sink protocol ---------------------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        """Record the run; a run id already stored (resume) is marked running again, nothing else
        about it changes."""
        with self.store.tx() as conn:
            exists = conn.execute(sa.select(T.runs.c.run_id).where(T.runs.c.run_id == run.run_id)).first()
            if exists:
                conn.execute(
                    T.runs.update()
                    .where(T.runs.c.run_id == run.run_id)
                    .values(status=RunStatus.RUNNING, finished_at=None)
                )
            else:
                conn.execute(T.runs.insert().values(**rows.run_row(run)))

    def lane_started(self, run: RunInfo, lane: LaneResult) -> None:
        """A lane row in state 'running'; a stale row of the same name is replaced."""
        with self.store.tx() as conn:
            old = conn.execute(
                sa.select(T.lanes.c.id).where(T.lanes.c.run_id == run.run_id, T.lanes.c.name == lane.name)
            ).all()
            delete_lanes(conn, [r[0] for r in old])
            values = {**rows.lane_result_row(lane), "status": LaneStatus.RUNNING}
            res = conn.execute(T.lanes.insert().values(run_id=run.run_id, started_at=_now(), **values))
            pk = res.inserted_primary_key
            assert pk is not None
            self._lane_ids[lane.name] = int(pk[0])
        self._seq[lane.name] = 0

    def sample(self, run: RunInfo, lane: str, record: RequestRecord | AggregateRecord) -> None:
        """One committed row per request (or batch) of lane ``lane`` (its name, started with
        ``lane_started``), as soon as it is measured."""
        if lane not in self._lane_ids:
            raise RuntimeError(f"a sample of lane {lane!r} before its lane_started")
        lane_id = self._lane_ids[lane]
        seq = self._seq[lane]
        self._seq[lane] = seq + 1
        with self.store.tx() as conn:
            if isinstance(record, RequestRecord):
                conn.execute(T.samples.insert().values(**rows.sample_row(lane_id, seq, record)))
            else:
                conn.execute(T.aggregates.insert().values(**rows.aggregate_row(lane_id, seq, record)))

    def lane_finished(self, run: RunInfo, lane: LaneResult) -> None:
        """Summary, flags, status and quality; a failed lane also gets a failures row with its log
        tail. Called again once a lane's quality is known (it replaces the quality row)."""
        if lane.name not in self._lane_ids:
            self.lane_started(run, lane)
        lane_id = self._lane_ids[lane.name]
        with self.store.tx() as conn:
            values = rows.lane_result_row(lane)
            conn.execute(T.lanes.update().where(T.lanes.c.id == lane_id).values(finished_at=_now(), **values))
            conn.execute(T.quality.delete().where(T.quality.c.lane_id == lane_id))
            if lane.quality is not None:
                conn.execute(T.quality.insert().values(**rows.quality_row(lane_id, lane.quality)))
            if lane.status == LaneStatus.FAILED:
                conn.execute(
                    T.failures.insert().values(
                        lane_id=lane_id,
                        run_id=run.run_id,
                        at=_now(),
                        error=lane.error,
                        log_tail=lane.log_tail,
                    )
                )

    def run_finished(self, run: RunInfo) -> None:
        with self.store.tx() as conn:
            conn.execute(
                T.runs.update()
                .where(T.runs.c.run_id == run.run_id)
                .values(status=run.status, finished_at=run.finished_at or _now())
            )

    # fingerprints ----------------------------------------------------------------------------
    def has_fingerprint(self, run: RunInfo, kind: str, key: str) -> bool:
        with self.store.tx() as conn:
            return _has_fingerprint(conn, run.run_id, kind, key)

    def add_fingerprint(self, run: RunInfo, kind: str, key: str, data: dict[str, Any]) -> None:
        """One fingerprint of the run (host, build, model, rpc); a second one of the same key is
        dropped."""
        with self.store.tx() as conn:
            if not _has_fingerprint(conn, run.run_id, kind, key):
                conn.execute(T.fingerprints.insert().values(run_id=run.run_id, kind=kind, key=key, data=data))


def _has_fingerprint(conn: Connection, run_id: str, kind: str, key: str) -> bool:
    q = sa.select(T.fingerprints.c.id).where(
        T.fingerprints.c.run_id == run_id, T.fingerprints.c.kind == kind, T.fingerprints.c.key == key
    )
    return conn.execute(q).first() is not None
