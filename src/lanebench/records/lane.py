"""Everything measured for one lane (``LaneResult``), its status, and a run document read back
as typed results (``results_from_document``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.busy import BusyRecord
from lanebench.records.envelope import CellSummary
from lanebench.records.memory import MemoryRecord
from lanebench.records.quality import QualityRecord
from lanebench.records.samples import (
    AggregateRecord,
    RequestRecord,
    Stat,
    aggregate_from_dict,
    is_busy,
    request_from_dict,
)


class LaneStatus(StrEnum):
    OK = "ok"
    FLAGGED = "flagged"  # measured, with something a reader must know (see ``flags``)
    FAILED = "failed"  # could not be measured (see ``error`` and ``log_tail``)


class RunStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # finished, and at least one lane failed
    INTERRUPTED = "interrupted"


@dataclass(slots=True)
class LaneResult:
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
    baseline: dict[str, Any] | None = None  # the kernel view: engines.llamabench.BaselineRecord.to_dict()
    memory: MemoryRecord | None = None
    # where the model ran: split, devices, each RPC endpoint's probe (orchestration.placement_step)
    placement: dict[str, Any] | None = None
    # the standard job's request as sent (prompt left out): path, body, and notes on what the
    # server refused (engines.base.Engine.request_notes)
    request: dict[str, Any] | None = None
    # the attribution experiment (run --attribute): attribution.AttributionRecord.to_dict()
    attribution: dict[str, Any] | None = None
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

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["lane"] = self.lane.model_dump(mode="json")
        d["status"] = str(self.status)
        d["argv"], d["flags"], d["per_position"] = list(self.argv), list(self.flags), list(self.per_position)
        d["metrics_delta"] = dict(self.metrics_delta)
        d["samples"] = [asdict(s) for s in self.samples]
        d["aggregates"] = [asdict(a) for a in self.aggregates]
        d["summary"] = {k: v.to_dict() for k, v in self.summary.items()}
        d["quality"] = self.quality.to_dict() if self.quality else None
        d["memory"] = self.memory.to_dict() if self.memory else None
        d["baseline"] = dict(self.baseline) if self.baseline else None
        d["placement"] = dict(self.placement) if self.placement else None
        d["request"] = dict(self.request) if self.request else None
        d["attribution"] = dict(self.attribution) if self.attribution else None
        d["busy"] = self.busy.to_dict() if self.busy else None
        d["backends"] = list(self.backends)
        d["envelope"] = [c.to_dict() for c in self.envelope]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LaneResult:
        """A result from its ``to_dict`` form (a JSON file, the store)."""
        return cls(
            name=str(d["name"]),
            lane=LaneSpec.model_validate(d.get("lane") or {"name": d["name"]}),
            status=LaneStatus(d.get("status") or "ok"),
            argv=list(d.get("argv") or []),
            load_s=d.get("load_s"),
            samples=[request_from_dict(s) for s in d.get("samples") or []],
            aggregates=[aggregate_from_dict(a) for a in d.get("aggregates") or []],
            metrics_delta=dict(d.get("metrics_delta") or {}),
            summary={k: Stat(**v) for k, v in (d.get("summary") or {}).items() if v},
            per_position=list(d.get("per_position") or []),
            flags=list(d.get("flags") or []),
            error=d.get("error"),
            log_tail=d.get("log_tail") or "",
            log_path=d.get("log_path"),
            quality=QualityRecord.from_dict(d["quality"]) if isinstance(d.get("quality"), dict) else None,
            baseline=d["baseline"] if isinstance(d.get("baseline"), dict) else None,
            memory=MemoryRecord.from_dict(d["memory"]) if isinstance(d.get("memory"), dict) else None,
            placement=d["placement"] if isinstance(d.get("placement"), dict) else None,
            request=d["request"] if isinstance(d.get("request"), dict) else None,
            attribution=d["attribution"] if isinstance(d.get("attribution"), dict) else None,
            busy=BusyRecord.from_dict(d.get("busy")),
            backends=[str(b) for b in d.get("backends") or []],
            envelope=[CellSummary.from_dict(c) for c in d.get("envelope") or [] if isinstance(c, dict)],
        )


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
