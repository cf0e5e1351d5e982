"""Planning: every lane resolved by its engine before anything starts.

The engine resolves the binary and its dialect, the model files, the context size and the full
argv (or checks the URL it attaches to); any problem stops the run before a server starts, with
every problem on its own line.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lanebench import __version__
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import cap_lines
from lanebench.config.placement import PLACED
from lanebench.config.run import RunConfig
from lanebench.engines.base import Engine, LanePlan, PlanContext
from lanebench.engines.registry import get_engine, takers
from lanebench.errors import BadInput, LanebenchError
from lanebench.host.hostinfo import host_basics
from lanebench.orchestration.envelope_step import lane_for_job
from lanebench.orchestration.memory_step import check_fit
from lanebench.records.run import RunInfo


def plan_context(config: RunConfig) -> PlanContext:
    """What an engine needs of the run configuration to plan a lane."""
    return PlanContext(job=config.job, server_bin=config.server_bin, check_drafts=config.check_drafts)


def refuse_fields(engine: Engine, lane: LaneSpec) -> None:
    """Refuse, by name, each engine-only lane field that is set and that the engine does not list
    in its ``lane_fields``: llama.cpp's placement fields (``PLACED``), and ``ATTACHED``
    (``LaneSpec.engine_fields``)."""
    for key in lane.engine_fields():
        if key in engine.lane_fields:
            continue
        label, name = f"lane {lane.name!r}: field {key!r}", f"engine {engine.name!r}"
        if key in PLACED:
            raise BadInput(
                f"{label} places the model with llama.cpp's flags; {name} does not take it (give "
                "the engine's own flags in extra_args)"
            )
        engines = " or ".join(repr(e) for e in takers(key))
        raise BadInput(f"{label} is for a server that already runs (engine {engines}); {name} starts its own")


def plan_lane(lane: LaneSpec, config: RunConfig) -> LanePlan:
    """Resolve one lane with its engine; raise BadInput/NotFound naming the lane and field.
    Engine-only fields the engine does not take are refused first, before it looks for anything."""
    engine = get_engine(lane.engine, f"lane {lane.name!r}: field 'engine'")
    refuse_fields(engine, lane)
    return engine.plan(lane_for_job(lane, engine, config.job), plan_context(config))


_LANE = "\0lane\0"  # stands for a lane's label while problems are compared (names hold no NUL)


def plan_lanes(lanes: Sequence[LaneSpec], config: RunConfig) -> list[LanePlan]:
    """Plan all lanes, collecting every problem (one line each) before raising.

    A problem many lanes share (a missing model named in ``[defaults]``) is one line naming
    the first lane and how many more; more than MAX_LINES lines end in a count of the rest."""
    plans: list[LanePlan] = []
    problems: dict[str, tuple[LanebenchError, list[str]]] = {}  # problem -> (error, lanes), in order
    for lane in lanes:
        try:
            plans.append(plan_lane(lane, config))
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
    if config.fit_check:
        check_fit(plans)
    return plans


def new_run(config: RunConfig, builds: Mapping[str, dict[str, Any]] | None = None) -> RunInfo:
    """A new run of ``config``; ``builds``: each build it serves lanes with, and its ``build_info``."""
    now = datetime.now(UTC)
    return RunInfo(
        run_id=now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2),
        started_at=now.isoformat(timespec="seconds"),
        lanebench_version=__version__,
        job=config.job,
        host=host_basics(),
        builds=dict(builds or {}),
        lanes_file=str(config.lanes_file) if config.lanes_file else None,
    )


def requests_per_lane(job: JobSpec) -> int:
    """Requests one lane's job sends (before re-measurements; with a budget, its estimate)."""
    if job.envelope:
        levels, depths = job.concurrency_levels, job.depth_levels
        fills = max(levels) * sum(1 for d in depths if d > 0)
        return fills + job.warmup * levels[0] + job.reps * sum(levels) * len(depths)
    return job.warmup + job.reps + (job.reps * job.aggregate if job.aggregate else 0)
