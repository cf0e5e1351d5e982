"""The results store: runs, lanes, raw samples, failures and fingerprints in one database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lanebench.errors import BadInput
from lanebench.records.lane import FINISHED, LaneResult, LaneStatus
from lanebench.records.run import RunInfo, StoredLane
from lanebench.store import rows, schema
from lanebench.store.db import guarded
from lanebench.store.delete import delete_lanes
from lanebench.store.sink import StoreSink

T = schema


def build_label(builds: dict[str, Any]) -> str:
    """``b11434 (commit abc1234)`` for the first build of a run, ``–`` when none."""
    labels = []
    for info in (builds or {}).values():
        b = info.get("build")
        text = f"b{b}" if b is not None else str(info.get("version_text") or "?")[:40]
        commit = info.get("commit")
        if commit and commit != "unknown":
            text += f" ({commit})"
        labels.append(text)
    return ", ".join(dict.fromkeys(labels)) or "–"


class Store:
    """One results database (SQLite or PostgreSQL); safe to share between processes."""

    def __init__(self, engine: Engine, label: str) -> None:
        self.engine = engine
        self.label = label

    def __repr__(self) -> str:
        return f"Store({self.label!r})"

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One short transaction; database errors become one clear line."""
        with guarded(self.label), self.engine.begin() as conn:
            yield conn

    def sink(self) -> StoreSink:
        """A sink that commits every sample as it arrives (and keeps fingerprints handed to it)."""
        return StoreSink(self)

    def close(self) -> None:
        self.engine.dispose()

    # runs -----------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunInfo:
        with self.tx() as conn:
            row = conn.execute(sa.select(T.runs).where(T.runs.c.run_id == run_id)).first()
        if row is None:
            raise BadInput(f"unknown run id {run_id!r} (see lanebench runs)")
        return rows.run_from_row(row)

    def latest_run_id(self) -> str:
        with self.tx() as conn:
            row = conn.execute(
                sa.select(T.runs.c.run_id).order_by(T.runs.c.started_at.desc(), T.runs.c.run_id.desc())
            ).first()
        if row is None:
            raise BadInput(f"database {self.label} holds no runs yet (measure some with lanebench run)")
        return str(row[0])

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, newest first: id, date, host, build, lane counts, status."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        with self.tx() as conn:
            q = sa.select(T.lanes.c.run_id, T.lanes.c.status, sa.func.count()).group_by(
                T.lanes.c.run_id, T.lanes.c.status
            )
            for run_id, status, n in conn.execute(q):
                counts[run_id][status] += int(n)
            run_rows = conn.execute(
                sa.select(T.runs).order_by(T.runs.c.started_at.desc(), T.runs.c.run_id.desc())
            ).all()
        return [_run_summary(r, counts.get(r.run_id, {})) for r in run_rows]

    # lanes ----------------------------------------------------------------------------------
    def finished_lane_names(self, run_id: str) -> set[str]:
        """Lanes fully measured (ok, flagged or failed)."""
        with self.tx() as conn:
            q = sa.select(T.lanes.c.name).where(T.lanes.c.run_id == run_id, T.lanes.c.status.in_(FINISHED))
            return {str(r[0]) for r in conn.execute(q)}

    def discard_unfinished(self, run_id: str) -> None:
        """Drop lanes (and their samples) that never finished, e.g. after kill -9."""
        with self.tx() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    sa.select(T.lanes.c.id).where(
                        T.lanes.c.run_id == run_id, T.lanes.c.status.not_in(FINISHED)
                    )
                )
            ]
            delete_lanes(conn, ids)

    def load_lanes(self, run_id: str) -> list[LaneResult]:
        """The run's lanes in measuring order, rebuilt with samples, aggregates and summary."""
        self.get_run(run_id)
        with self.tx() as conn:
            lane_rows = conn.execute(
                sa.select(T.lanes).where(T.lanes.c.run_id == run_id).order_by(T.lanes.c.id)
            ).all()
            ids = [r.id for r in lane_rows]
            tails = {
                r.lane_id: r.log_tail or ""
                for r in conn.execute(sa.select(T.failures).where(T.failures.c.lane_id.in_(ids)))
            }
            samples = conn.execute(
                sa.select(T.samples).where(T.samples.c.lane_id.in_(ids)).order_by(T.samples.c.seq)
            ).all()
            aggs = conn.execute(
                sa.select(T.aggregates).where(T.aggregates.c.lane_id.in_(ids)).order_by(T.aggregates.c.seq)
            ).all()
            quality = conn.execute(sa.select(T.quality).where(T.quality.c.lane_id.in_(ids))).all()
        lanes = {r.id: rows.lane_from_row(r, tails.get(r.id, "")) for r in lane_rows}
        for s in samples:
            lanes[s.lane_id].samples.append(rows.sample_from_row(s))
        for a in aggs:
            lanes[a.lane_id].aggregates.append(rows.aggregate_from_row(a))
        for q in quality:
            lanes[q.lane_id].quality = rows.quality_from_row(q)
        return list(lanes.values())

    def lane_extras(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Per lane name: times, server binary and the backends its log showed."""
        with self.tx() as conn:
            q = sa.select(
                T.lanes.c.name,
                T.lanes.c.started_at,
                T.lanes.c.finished_at,
                T.lanes.c.server_bin,
                T.lanes.c.backends,
            ).where(T.lanes.c.run_id == run_id)
            return {r.name: dict(r._mapping) for r in conn.execute(q)}

    def fingerprints(self, run_id: str) -> list[dict[str, Any]]:
        """Fingerprints of a run: ``{"kind": host|build|model, "key": ..., "data": {...}}``."""
        with self.tx() as conn:
            q = (
                sa.select(T.fingerprints.c.kind, T.fingerprints.c.key, T.fingerprints.c.data)
                .where(T.fingerprints.c.run_id == run_id)
                .order_by(T.fingerprints.c.id)
            )
            return [dict(r._mapping) for r in conn.execute(q)]

    def finished_lanes(self) -> list[StoredLane]:
        """Every finished lane of every run (no samples), oldest first, with its run's facts."""
        with self.tx() as conn:
            q = (
                sa.select(
                    T.lanes.c.name,
                    T.lanes.c.status,
                    T.lanes.c.lane,
                    T.lanes.c.summary,
                    T.lanes.c.flags,
                    T.lanes.c.busy,
                    T.lanes.c.load_s,
                    T.runs.c.run_id,
                    T.runs.c.started_at,
                    T.runs.c.hostname,
                    T.runs.c.builds,
                    T.runs.c.job,
                )
                .join(T.runs, T.runs.c.run_id == T.lanes.c.run_id)
                .where(T.lanes.c.status.in_(FINISHED))
                .order_by(T.runs.c.started_at, T.runs.c.run_id, T.lanes.c.id)
            )
            return [rows.stored_lane_from_row(r) for r in conn.execute(q)]


def _run_summary(r: Any, counts: dict[str, int]) -> dict[str, Any]:
    host = r.host or {}
    done = sum(counts.get(s, 0) for s in FINISHED)
    return {
        "run_id": r.run_id,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "status": r.status,
        "host": r.hostname or host.get("hostname"),
        "cpu": host.get("cpu"),
        "build": build_label(r.builds or {}),
        "lanes": done,
        "lanes_failed": counts.get(LaneStatus.FAILED, 0),
        "lanes_flagged": counts.get(LaneStatus.FLAGGED, 0),
        "lanes_unfinished": sum(n for s, n in counts.items() if s not in FINISHED),
        "lanebench_version": r.lanebench_version,
        "lanes_file": r.lanes_file,
    }
