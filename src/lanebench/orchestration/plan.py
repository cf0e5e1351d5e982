"""Planning: every lane resolved by its engine before anything starts.

The engine resolves the binary and its dialect, the model files, the context size and the full
argv (or checks the URL it attaches to); any problem stops the run before a server starts, with
every problem on its own line.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lanebench import __version__
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import cap_lines
from lanebench.engines.base import LanePlan, PlanContext, refuse_placement
from lanebench.engines.registry import get_engine
from lanebench.errors import LanebenchError
from lanebench.host.hostinfo import host_basics
from lanebench.orchestration.envelope_step import lane_for_job
from lanebench.orchestration.memory_step import check_fit
from lanebench.records.run import RunInfo


@dataclass(slots=True)
class RunOptions:
    """How to run lanes: the job, where logs go, and the run's defaults and limits."""

    job: JobSpec
    out_dir: Path
    server_bin: Path | None = None
    load_timeout_s: float = 300.0
    request_timeout_s: float = 3600.0
    check_drafts: bool = True
    reuse: bool = True  # lanes differing only in request fields share one server when they can
    lanes_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    quality: bool = False  # score every lane against the reference (else only lanes with quality = true)
    reference: str | None = None  # the reference lane's name; None: marked reference = true, or the rule
    quality_tokens: int = 4096  # tokens to score (fewer when free disk or memory is short)
    quality_dir: Path | None = None  # where the base file goes; None: out_dir / "quality"
    fit_check: bool = True  # refuse lanes whose estimate, placed per device, exceeds free memory
    baseline: bool = False  # llama-bench beside every lane (the kernel view); lanes may ask alone
    baseline_reps: int = 3
    attribute: bool = False  # the attribution experiment after every llama.cpp lane (attribute_step)
    attribute_reps: int = 5  # single requests per arm of the experiment

    def context(self) -> PlanContext:
        return PlanContext(job=self.job, server_bin=self.server_bin, check_drafts=self.check_drafts)


def plan_lane(lane: LaneSpec, opts: RunOptions) -> LanePlan:
    """Resolve one lane with its engine; raise BadInput/NotFound naming the lane and field."""
    engine = get_engine(lane.engine, f"lane {lane.name!r}: field 'engine'")
    refuse_placement(engine, lane)
    return engine.plan(lane_for_job(lane, engine, opts.job), opts.context())


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
    if opts.fit_check:
        check_fit(plans)
    return plans


def new_run(opts: RunOptions, plans: Sequence[LanePlan] = ()) -> RunInfo:
    now = datetime.now(UTC)
    return RunInfo(
        run_id=now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2),
        started_at=now.isoformat(timespec="seconds"),
        lanebench_version=__version__,
        job=opts.job,
        host=host_basics(),
        builds={p.build: p.build_info for p in plans},
        lanes_file=str(opts.lanes_file) if opts.lanes_file else None,
    )


def requests_per_lane(job: JobSpec) -> int:
    """Requests one lane's job sends (before re-measurements; with a budget, its estimate)."""
    if job.envelope:
        levels, depths = job.concurrency_levels, job.depth_levels
        fills = max(levels) * sum(1 for d in depths if d > 0)
        return fills + job.warmup * levels[0] + job.reps * sum(levels) * len(depths)
    return job.warmup + job.reps + (job.reps * job.aggregate if job.aggregate else 0)
