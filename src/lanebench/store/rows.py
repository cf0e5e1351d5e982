"""Records to database rows and back (pure functions, no I/O).

A table's columns are its record's fields of the same name, converted by ``records.codec``
(nested records, lists and dicts go to the schema's JSON text columns), plus a few columns
computed from the record for queries (``TableMap.computed``). Reading a row builds the record
from the columns its fields name, through the record's own ``from_dict``. So a field added to a
record is stored once its table has a column of that name (a migration), and read back with no
other change; ``TableMap.unstored`` says which fields are kept elsewhere and is checked by the
tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.records.busy import LoadRecord
from lanebench.records.codec import fields_data, to_data
from lanebench.records.lane import FINISHED, LaneResult, LaneStatus
from lanebench.records.quality import QualityRecord
from lanebench.records.run import RunInfo, StoredLane
from lanebench.records.samples import AggregateRecord, RequestRecord
from lanebench.store import schema as T


def _nothing(_rec: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class TableMap:
    """How one record type is stored in one table: every field with a column of its name, then
    the ``computed`` columns; ``whole``: a JSON column holding the whole record (fields without a
    column of their own live there); ``unstored``: fields kept in other tables."""

    table: sa.Table
    record: type
    computed: Callable[[Any], dict[str, Any]] = _nothing
    whole: str | None = None
    unstored: frozenset[str] = field(default_factory=frozenset)

    def row(self, rec: Any) -> dict[str, Any]:
        """The column values of ``rec`` (``computed`` ones included)."""
        values = fields_data(rec, self.table.c.keys())
        if self.whole is not None:
            values[self.whole] = to_data(rec)
        return {**values, **self.computed(rec)}

    def data(self, row: Any) -> dict[str, Any]:
        """The columns of ``row`` that name fields of the record, as its ``from_dict`` takes them."""
        names = {f.name for f in fields(self.record)}
        return {k: v for k, v in row._mapping.items() if k in names}


def _timings(rec: RequestRecord) -> dict[str, Any]:
    """The engine's own figures a query wants as columns (the whole ``timings`` is JSON)."""
    t = rec.timings or {}
    ints = ("prompt_n", "predicted_n", "draft_n", "draft_n_accepted")
    out: dict[str, Any] = {k: None if t.get(k) is None else int(t[k]) for k in ints}
    out |= {k: None if t.get(k) is None else float(t[k]) for k in ("prompt_ms", "predicted_ms")}
    return out | load_columns(rec.load)


def load_columns(load: LoadRecord | None) -> dict[str, Any]:
    """A window's load as the samples' and aggregates' query columns (None where not measured);
    the whole record is the ``load`` column."""
    if load is None:
        return {"other_cores": None, "busy": None}
    return {"other_cores": load.load_cores, "busy": load.busy}


RUNS = TableMap(T.runs, RunInfo, lambda r: {"hostname": (r.host or {}).get("hostname")})
LANES = TableMap(
    T.lanes,
    LaneResult,
    lambda lane: {"server_bin": lane.argv[0] if lane.argv else None},
    unstored=frozenset({"samples", "aggregates", "quality", "log_tail"}),  # their own tables
)
SAMPLES = TableMap(T.samples, RequestRecord, _timings)
AGGREGATES = TableMap(T.aggregates, AggregateRecord, lambda a: load_columns(a.load))
QUALITY = TableMap(T.quality, QualityRecord, whole="data")
TABLES = (RUNS, LANES, SAMPLES, AGGREGATES, QUALITY)


def run_row(run: RunInfo) -> dict[str, Any]:
    return RUNS.row(run)


def run_from_row(row: Any) -> RunInfo:
    return RunInfo.from_dict(RUNS.data(row))


def lane_result_row(lane: LaneResult) -> dict[str, Any]:
    """The columns a finished (or started) lane updates."""
    return LANES.row(lane)


def sample_row(lane_id: int, seq: int, rec: RequestRecord) -> dict[str, Any]:
    """One request: the client's times and the engine's own timings, every raw figure kept."""
    return {"lane_id": lane_id, "seq": seq, **SAMPLES.row(rec)}


def sample_from_row(row: Any) -> RequestRecord:
    return RequestRecord.from_dict(SAMPLES.data(row))


def aggregate_row(lane_id: int, seq: int, rec: AggregateRecord) -> dict[str, Any]:
    return {"lane_id": lane_id, "seq": seq, **AGGREGATES.row(rec)}


def aggregate_from_row(row: Any) -> AggregateRecord:
    return AggregateRecord.from_dict(AGGREGATES.data(row))


def quality_row(lane_id: int, q: QualityRecord) -> dict[str, Any]:
    """A lane's quality: the figures reports query as columns, the whole record as JSON."""
    return {"lane_id": lane_id, **QUALITY.row(q)}


def quality_from_row(row: Any) -> QualityRecord:
    return QualityRecord.from_dict(dict(row.data or {}, status=row.status))


def _stored_draft(data: Any) -> Draft | None:
    if not isinstance(data, dict):
        return None
    try:
        return Draft.model_validate(data)
    except ValidationError:
        return Draft.model_construct(**{k: v for k, v in data.items() if k in Draft.model_fields})


def stored_lane(name: str, data: Any) -> LaneSpec:
    """A stored lane as a ``LaneSpec``; one stored by an older lanebench whose fields no longer
    validate keeps its values unchecked rather than being lost (its draft too, as a ``Draft``)."""
    data = dict(data if isinstance(data, dict) else {}, name=name)
    try:
        return LaneSpec.model_validate(data)
    except ValidationError:
        known = {k: v for k, v in data.items() if k in LaneSpec.model_fields}
        known["draft"] = _stored_draft(known.get("draft"))
        return LaneSpec.model_construct(**known)


def lane_from_row(row: Any, log_tail: str = "") -> LaneResult:
    """A lane without its samples (the caller adds them); a lane that never finished reads as
    failed."""
    finished = row.status in FINISHED
    return LaneResult.from_dict(
        {
            **LANES.data(row),
            "lane": stored_lane(row.name, row.lane),
            "status": row.status if finished else LaneStatus.FAILED,
            "error": row.error if finished else (row.error or "lane never finished (interrupted)"),
            "log_tail": log_tail,
        }
    )


def stored_lane_from_row(row: Any) -> StoredLane:
    """A finished lane with its run's facts (``Store.finished_lanes``'s query)."""
    return StoredLane.from_dict({**dict(row._mapping), "lane": stored_lane(row.name, row.lane)})
