"""Run lanes: plan every lane before anything starts, then measure them one by one.

Planning resolves the binary and its dialect, the model files, the context size and the full
argv of every lane; any problem stops the run before a server starts. Measuring a lane that
fails (engine died, timeout) records the failure with its log tail, and the next lane runs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lanebench import __version__
from lanebench.engines.argv import build_argv
from lanebench.engines.dialect import Dialect, probe
from lanebench.engines.discovery import find_server_bin
from lanebench.errors import BadInput, LanebenchError, LaneFailed
from lanebench.gguf.check import check_draft
from lanebench.hostinfo import host_basics
from lanebench.lanes import LaneSpec, cap_lines
from lanebench.measure import LaneJob, summarize
from lanebench.models import check_gguf_file, default_model_path
from lanebench.records import AggregateRecord, JobSpec, LaneResult, RequestRecord
from lanebench.server import ServerProcess
from lanebench.sinks import RunInfo, Sink

CTX_PAD = 64  # tokens of slack per slot beyond n_in + n_out


@dataclass(slots=True)
class LanePlan:
    """Everything needed to start one lane, resolved before anything starts."""

    lane: LaneSpec
    server_bin: Path
    dialect: Dialect
    model: Path
    ctx: int
    argv_preview: list[str]

    def argv(self, port: int) -> list[str]:
        lane = self.lane.model_copy(update={"ctx": self.ctx})
        return build_argv(lane, self.dialect, self.server_bin, self.model, port)


@dataclass(slots=True)
class RunOptions:
    job: JobSpec
    out_dir: Path
    server_bin: Path | None = None
    load_timeout_s: float = 300.0
    request_timeout_s: float = 3600.0
    check_drafts: bool = True


def needed_ctx(job: JobSpec, slots: int) -> int:
    """Context for ``slots`` slots that each hold a whole job, rounded up to 256."""
    per_slot = job.n_in + job.n_out + CTX_PAD
    return -(-(per_slot * slots) // 256) * 256


def _draft_problems(lane: LaneSpec, model: Path, dialect: Dialect) -> list[str]:
    assert lane.draft is not None
    draft = lane.draft_path(model) or model
    problems = check_draft(model, draft, lane.draft.kind, dialect)
    return [f"lane {lane.name!r}: draft check: {p}" for p in problems]


def plan_lane(lane: LaneSpec, opts: RunOptions) -> LanePlan:
    """Resolve one lane; raise BadInput/NotFound naming the lane and field."""
    label = f"lane {lane.name!r}"
    if lane.server_bin is not None:
        binary = find_server_bin(lane.server_bin, f"{label}: field 'server_bin'")
    else:
        binary = find_server_bin(opts.server_bin)
    dialect = probe(binary)
    model = lane.model or default_model_path()
    check_gguf_file(model, f"{label}: field 'model'")
    if lane.draft is not None and lane.draft.path is not None:
        check_gguf_file(lane.draft.path, f"{label}: field 'draft.path'")
    ctx = needed_ctx(opts.job, lane.slots)
    if lane.ctx is not None:
        if lane.ctx // lane.slots < opts.job.n_in + opts.job.n_out:
            raise BadInput(
                f"{label}: field 'ctx' = {lane.ctx} gives {lane.ctx // lane.slots} tokens per slot, "
                f"less than the job's {opts.job.n_in + opts.job.n_out} (n_in + n_out); "
                f"use at least {ctx} or leave it empty"
            )
        ctx = lane.ctx
    plan = LanePlan(lane, binary, dialect, model, ctx, [])
    plan.argv_preview = plan.argv(0)  # surfaces LaneRefused before anything starts
    if lane.draft is not None and opts.check_drafts:
        problems = _draft_problems(lane, model, dialect)
        if problems:
            raise BadInput("\n".join(problems))
    return plan


_LANE = "\0lane\0"  # stands for a lane's label while problems are compared (names hold no NUL)


def plan_lanes(lanes: Sequence[LaneSpec], opts: RunOptions) -> list[LanePlan]:
    """Plan all lanes, collecting every problem (one line each) before raising.

    A problem many lanes share (a missing model named in ``[defaults]``) is one line naming
    the first lane and how many more; more than MAX_LINES lines end in a count of the rest."""
    plans: list[LanePlan] = []
    problems: dict[str, tuple[LanebenchError, list[str]]] = {}  # problem -> (error, lanes), in order
    for lane in lanes:
        try:
            plans.append(plan_lane(lane, opts))
        except LanebenchError as exc:
            key = str(exc).replace(f"lane {lane.name!r}: ", _LANE + ": ")
            problems.setdefault(key, (exc, []))[1].append(lane.name)
    if problems:
        worst = max((e for e, _ in problems.values()), key=lambda e: e.exit_code)
        lines: list[str] = []
        for key, (_, names) in problems.items():
            label = f"lane {names[0]!r}" + (f" (and {len(names) - 1} more lanes)" if len(names) > 1 else "")
            lines += key.replace(_LANE, label).splitlines()
        raise type(worst)(cap_lines(lines))
    return plans


def new_run(opts: RunOptions, builds: dict[str, Dialect], lanes_file: str | None = None) -> RunInfo:
    now = datetime.now(UTC)
    return RunInfo(
        run_id=now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2),
        started_at=now.isoformat(timespec="seconds"),
        lanebench_version=__version__,
        job=opts.job,
        host=host_basics(),
        builds={k: v.to_dict() for k, v in builds.items()},
        lanes_file=lanes_file,
    )


Progress = Callable[[str, int, int], None]  # (lane name, done, total) requests


def requests_per_lane(job: JobSpec) -> int:
    return job.warmup + job.reps + (job.reps * job.aggregate if job.aggregate else 0)


class _Recorder:
    """One lane's result: announces it to the sinks, forwards samples, finishes it."""

    def __init__(
        self, plan: LanePlan, run: RunInfo, sinks: Sequence[Sink], job: JobSpec, progress: Progress | None
    ) -> None:
        self.plan, self.run, self.sinks, self.job, self.progress = plan, run, sinks, job, progress
        lane = plan.lane
        self.result = LaneResult(name=lane.name, lane=lane.model_dump(mode="json"), argv=plan.argv_preview)
        self.done = 0
        for s in sinks:
            s.lane_started(run, self.result)

    def emit(self, rec: RequestRecord | AggregateRecord) -> None:
        if isinstance(rec, RequestRecord):
            self.done += 1
            if self.progress:
                self.progress(self.plan.lane.name, self.done, requests_per_lane(self.job))
        for s in self.sinks:
            s.sample(self.run, self.result, rec)

    def fail(self, exc: LaneFailed, log_tail: str) -> None:
        r = self.result
        r.status, r.error, r.log_tail = "failed", str(exc), exc.log_tail or log_tail

    def finish(self, log_tail: str) -> LaneResult:
        summarize(self.result, self.job, log_tail)
        for s in self.sinks:
            s.lane_finished(self.run, self.result)
        return self.result


def _server_for(plan: LanePlan, run: RunInfo, opts: RunOptions, label: str) -> ServerProcess:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    log_path = opts.out_dir / f"{run.run_id}-{safe}.log"
    return ServerProcess(
        plan.argv, log_path, label=f"lane {label!r}", env=plan.lane.env, load_timeout_s=opts.load_timeout_s
    )


def _run_job(
    server: ServerProcess, rec: _Recorder, opts: RunOptions, speculative: dict[str, Any] | None = None
) -> None:
    rec.result.load_s = server.load_s
    rec.result.argv = server.argv
    rec.result.log_path = str(server.log_path)
    job = LaneJob(
        server,
        rec.result,
        opts.job,
        rec.emit,
        model_key=str(rec.plan.model),
        request_timeout_s=opts.request_timeout_s,
        speculative=speculative,
    )
    asyncio.run(job.run())
    server.check_alive()


def measure_plan(
    plan: LanePlan, run: RunInfo, opts: RunOptions, sinks: Sequence[Sink], progress: Progress | None = None
) -> LaneResult:
    """Start the lane's server, run the job, stop the server; failures are recorded, not raised."""
    rec = _Recorder(plan, run, sinks, opts.job, progress)
    server = _server_for(plan, run, opts, plan.lane.name)
    log_tail = ""
    try:
        with server:
            _run_job(server, rec, opts)
            log_tail = server.log_tail(200)
    except LaneFailed as exc:
        log_tail = server.log_tail()
        rec.fail(exc, log_tail)
    return rec.finish(log_tail)
