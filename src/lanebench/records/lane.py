"""Everything measured for one lane (``LaneResult``), its status, and a run document read back
as typed results (``results_from_document``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.attribution import AttributionRecord
from lanebench.records.baseline import BaselineRecord
from lanebench.records.busy import BusyRecord
from lanebench.records.codec import Record, from_data
from lanebench.records.envelope import CellSummary
from lanebench.records.memory import MemoryRecord
from lanebench.records.placement import PlacementRecord
from lanebench.records.quality import QualityRecord
from lanebench.records.request import SentRequest
from lanebench.records.samples import AggregateRecord, RequestRecord, Stat, is_busy


class LaneStatus(StrEnum):
    OK = "ok"
    FLAGGED = "flagged"  # measured, with something a reader must know (see ``flags``)
    FAILED = "failed"  # could not be measured (see ``error`` and ``log_tail``)
    RUNNING = "running"  # a stored lane being measured (a lane read back never has it)


FINISHED = (LaneStatus.OK, LaneStatus.FLAGGED, LaneStatus.FAILED)


class RunStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # finished, and at least one lane failed
    INTERRUPTED = "interrupted"


@dataclass(slots=True)
class LaneResult(Record):
    """Everything measured for one lane (or why it could not be)."""

    name: str
    lane: LaneSpec
    status: LaneStatus = LaneStatus.OK
    argv: list[str] = field(default_factory=list)
    load_s: float | None = None
    samples: list[RequestRecord] = field(default_factory=list)
    aggregates: list[AggregateRecord] = field(default_factory=list)
    metrics_delta: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Stat] = field(default_factory=dict)
    per_position: list[float] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    log_tail: str = ""
    log_path: str | None = None
    quality: QualityRecord | None = None
    baseline: BaselineRecord | None = None  # the kernel view (llama-bench)
    memory: MemoryRecord | None = None
    placement: PlacementRecord | None = None  # where the model ran (split, devices, RPC endpoints)
    request: SentRequest | None = None  # the standard job's request as sent, prompt left out
    attribution: AttributionRecord | None = None  # the attribution experiment (run --attribute)
    busy: BusyRecord | None = None  # figures measured while the machine was busy (lanebench.busy)
    backends: list[str] = field(default_factory=list)  # compute backends the server's log named
    envelope: list[CellSummary] = field(default_factory=list)  # one per (depth, concurrency) cell

    def measured_singles(self) -> list[RequestRecord]:
        """The successful single requests the figures come from: the quiet ones when there are
        any, else every one (then the figures are marked busy in ``busy``). Never a mix. An
        envelope run has no single requests: its one-stream cell at the smallest depth stands in."""
        ok = [r for r in self.samples if r.kind == "single" and r.ok]
        if not ok:
            cells = [r for r in self.samples if r.kind == "cell" and r.ok and r.concurrency == 1]
            low = min((r.depth for r in cells), default=0)
            ok = [r for r in cells if r.depth == low]
        quiet = [r for r in ok if not is_busy(r)]
        return quiet or ok

    def measured_batches(self) -> list[AggregateRecord]:
        """The successful N-slot batches the aggregate comes from, chosen like the singles (the
        envelope's batches are its cells', summarised per cell)."""
        ok = [a for a in self.aggregates if a.ok and a.depth is None]
        quiet = [a for a in ok if not is_busy(a)]
        return quiet or ok

    @classmethod
    def from_dict(cls, d: Any) -> LaneResult:
        """A result from its ``to_dict`` form (a JSON file, the store); a lane given as a
        ``LaneSpec`` is kept as it is (the store reads stored lanes its own way)."""
        if not isinstance(d, dict):
            raise TypeError(f"expected an object, got {type(d).__name__}")
        lane = d.get("lane")
        if not isinstance(lane, LaneSpec):
            lane = LaneSpec.model_validate(lane or {"name": d["name"]})
        return from_data(cls, {**d, "lane": lane})


@dataclass(slots=True)
class RunResults:
    """A finished run as the analysis modules read it: its job and its lanes, typed."""

    job: JobSpec
    lanes: list[LaneResult]


def results_from_document(doc: Any, source: str) -> RunResults:
    """A run document (``lanebench run --json``) as typed results; ``ValueError`` naming
    ``source`` and the lane when it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("lanes"), list):
        raise ValueError(
            f"{source}: not a run document (no 'lanes' list); write one with lanebench run --json"
        )
    run: Any = doc.get("run")
    job_data: Any = run.get("job") if isinstance(run, dict) else None
    if not isinstance(job_data, dict):
        job_data = {}
    known = {f.name for f in fields(JobSpec)}
    for key in ("n_in", "n_out", "reps", "warmup", "aggregate"):
        value = job_data.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{source}: run.job.{key}: expected a non-negative integer, got {value!r}"[:300])
    try:
        job = JobSpec(**{k: v for k, v in job_data.items() if k in known})
    except TypeError as exc:
        raise ValueError(f"{source}: run.job: {exc}") from None
    lanes = []
    for i, lane in enumerate(doc["lanes"]):
        try:
            lanes.append(LaneResult.from_dict(lane))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            first = str(exc).splitlines()[0][:200]
            raise ValueError(f"{source}: lane #{i + 1}: not a lanebench lane result ({first})") from None
    return RunResults(job, lanes)
