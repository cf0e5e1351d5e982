"""Records to database rows and back (pure functions, no I/O)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.busy import BusyRecord, LoadRecord
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.memory import MemoryRecord
from lanebench.records.quality import QualityRecord
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord, Stat

FINISHED = ("ok", "flagged", "failed")


def run_row(run: RunInfo) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status": run.status,
        "lanebench_version": run.lanebench_version,
        "hostname": (run.host or {}).get("hostname"),
        "job": _job_dict(run.job),
        "host": run.host,
        "builds": run.builds,
        "lanes_file": run.lanes_file,
    }


def _job_dict(job: JobSpec) -> dict[str, Any]:
    return {k: getattr(job, k) for k in JobSpec.__dataclass_fields__}


def run_from_row(row: Any) -> RunInfo:
    job = {k: v for k, v in (row.job or {}).items() if k in JobSpec.__dataclass_fields__}
    return RunInfo(
        run_id=row.run_id,
        started_at=row.started_at,
        lanebench_version=row.lanebench_version,
        job=JobSpec(**job),
        host=row.host or {},
        builds=row.builds or {},
        status=row.status,
        finished_at=row.finished_at,
        lanes_file=row.lanes_file,
    )


def lane_result_row(lane: LaneResult) -> dict[str, Any]:
    """The columns a finished (or started) lane updates."""
    return {
        "status": lane.status,
        "lane": lane.lane.model_dump(mode="json"),
        "argv": lane.argv,
        "server_bin": lane.argv[0] if lane.argv else None,
        "load_s": lane.load_s,
        "metrics_delta": lane.metrics_delta,
        "summary": {k: v.to_dict() for k, v in lane.summary.items()},
        "per_position": lane.per_position,
        "flags": lane.flags,
        "error": lane.error,
        "log_path": lane.log_path,
        "memory": lane.memory.to_dict() if lane.memory else None,
        "baseline": dict(lane.baseline) if lane.baseline else None,
        "placement": dict(lane.placement) if lane.placement else None,
        "request": dict(lane.request) if lane.request else None,
        "attribution": dict(lane.attribution) if lane.attribution else None,
        "busy": lane.busy.to_dict() if lane.busy else None,
        "backends": list(lane.backends),
    }


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def sample_row(lane_id: int, seq: int, rec: RequestRecord) -> dict[str, Any]:
    """One request: the client's times and the engine's own timings, every raw figure kept."""
    t = rec.timings or {}
    return {
        "lane_id": lane_id,
        "seq": seq,
        "kind": rec.kind,
        "rep": rec.rep,
        "stream_index": rec.stream_index,
        "n_in": rec.n_in,
        "n_out": rec.n_out,
        "ok": rec.ok,
        "error": rec.error,
        "t_start": rec.t_start,
        "ttft_s": rec.ttft_s,
        "wall_s": rec.wall_s,
        "stream_tokens": rec.stream_tokens,
        "decode_stream_s": rec.decode_stream_s,
        "prompt_n": _int(t.get("prompt_n")),
        "prompt_ms": _float(t.get("prompt_ms")),
        "predicted_n": _int(t.get("predicted_n")),
        "predicted_ms": _float(t.get("predicted_ms")),
        "draft_n": _int(t.get("draft_n")),
        "draft_n_accepted": _int(t.get("draft_n_accepted")),
        "timings": t,
        "content_sha": rec.content_sha,
        "tokens_sha": rec.tokens_sha,
        "stream_chunks": rec.stream_chunks,
        "first_tokens": rec.first_tokens,
        "token_count": rec.token_count,
        "token_ids": rec.token_ids,
        **load_columns(rec.load),
    }


def load_columns(load: LoadRecord | None) -> dict[str, Any]:
    """A window's load as the samples' and aggregates' columns (None where not measured)."""
    if load is None:
        return {"other_cores": None, "busy": None, "load": None}
    return {"other_cores": load.load_cores, "busy": load.busy, "load": asdict(load)}


def sample_from_row(row: Any) -> RequestRecord:
    return RequestRecord(
        kind=row.kind,
        rep=row.rep,
        n_in=row.n_in,
        n_out=row.n_out,
        ok=bool(row.ok),
        error=row.error,
        t_start=row.t_start or 0.0,
        ttft_s=row.ttft_s,
        wall_s=row.wall_s,
        stream_tokens=row.stream_tokens or 0,
        decode_stream_s=row.decode_stream_s,
        timings=row.timings or {},
        content_sha=row.content_sha,
        stream_index=row.stream_index,
        tokens_sha=row.tokens_sha,
        stream_chunks=row.stream_chunks or 0,
        first_tokens=row.first_tokens,
        token_count=row.token_count,
        token_ids=list(row.token_ids) if isinstance(row.token_ids, list) else None,
        load=LoadRecord.from_dict(row.load),
    )


def aggregate_row(lane_id: int, seq: int, rec: AggregateRecord) -> dict[str, Any]:
    return {
        "lane_id": lane_id,
        "seq": seq,
        "rep": rec.rep,
        "streams": rec.streams,
        "wall_s": rec.wall_s,
        "tokens": rec.tokens,
        "ok": rec.ok,
        "error": rec.error,
        **load_columns(rec.load),
    }


def aggregate_from_row(row: Any) -> AggregateRecord:
    return AggregateRecord(
        rep=row.rep,
        streams=row.streams,
        wall_s=row.wall_s,
        tokens=row.tokens,
        ok=bool(row.ok),
        error=row.error,
        load=LoadRecord.from_dict(row.load),
    )


def stored_lane(name: str, data: dict[str, Any] | None) -> LaneSpec:
    """A stored lane as a ``LaneSpec``; one stored by an older lanebench whose fields no longer
    validate keeps its values unchecked rather than being lost."""
    data = dict(data or {}, name=name)
    try:
        return LaneSpec.model_validate(data)
    except ValidationError:
        return LaneSpec.model_construct(**data)


def lane_from_row(row: Any, log_tail: str = "") -> LaneResult:
    """A lane without its samples (the caller adds them)."""
    status = LaneStatus(row.status) if row.status in FINISHED else LaneStatus.FAILED
    return LaneResult(
        name=row.name,
        lane=stored_lane(row.name, row.lane),
        status=status,
        argv=row.argv or [],
        load_s=row.load_s,
        metrics_delta=row.metrics_delta or {},
        summary={k: Stat(**v) for k, v in (row.summary or {}).items()},
        per_position=row.per_position or [],
        flags=row.flags or [],
        error=row.error if row.status in FINISHED else (row.error or "lane never finished (interrupted)"),
        log_tail=log_tail,
        log_path=row.log_path,
        memory=MemoryRecord.from_dict(row.memory) if isinstance(row.memory, dict) else None,
        baseline=row.baseline if isinstance(row.baseline, dict) else None,
        placement=row.placement if isinstance(row.placement, dict) else None,
        request=row.request if isinstance(row.request, dict) else None,
        attribution=row.attribution if isinstance(row.attribution, dict) else None,
        busy=BusyRecord.from_dict(row.busy),
        backends=[str(b) for b in row.backends or []],
    )


def quality_row(lane_id: int, q: QualityRecord) -> dict[str, Any]:
    """A lane's quality: the figures reports query as columns, the whole record as JSON."""
    return {
        "lane_id": lane_id,
        "status": str(q.status),
        "reference": q.reference,
        "tokens": q.tokens,
        "ctx": q.ctx,
        "ppl": q.ppl,
        "ppl_err": q.ppl_err,
        "kld_mean": q.kld_mean,
        "kld_err": q.kld_err,
        "kld_p99": q.kld_p99,
        "same_top1": q.same_top1,
        "same_top1_err": q.same_top1_err,
        "greedy": q.greedy,
        "fingerprint": q.fingerprint,
        "note": q.note,
        "data": q.to_dict(),
    }


def quality_from_row(row: Any) -> QualityRecord:
    return QualityRecord.from_dict(dict(row.data or {}, status=row.status))
