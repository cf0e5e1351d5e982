"""The one entry point ``run``, ``sweep`` and ``tune`` share: ``run_lanes(lanes, config, sinks)``.

Plan every lane (nothing starts if any lane cannot), group lanes that can share a server,
measure group by group with results written to every sink as measured, and mark the run done,
failed or interrupted. Resuming a stored run measures only the lanes it is missing, with the
stored run's job. The CLI only builds the ``RunConfig`` and prints; everything else happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from lanebench.busy.meter import busy_warning, default_threads
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.engines.base import LanePlan
from lanebench.orchestration.fingerprint_step import Build, FingerprintSink, FingerprintStore
from lanebench.orchestration.grid import group_plans
from lanebench.orchestration.measure_lane import LaneMeasurer, Progress
from lanebench.orchestration.plan import new_run, plan_lanes
from lanebench.orchestration.quality_step import Say, apply_quality, check_quality, wants_quality
from lanebench.orchestration.resume_step import kept_lanes, refuse_other_machine
from lanebench.quality.assess import QualityOutcome
from lanebench.records.lane import LaneResult, LaneStatus, RunStatus
from lanebench.records.run import RunInfo
from lanebench.store.sinks import Sink


class StoreSinkLike(Sink, FingerprintStore, Protocol):
    """The store's sink: a sink that also keeps fingerprints handed to it."""


class ResultStore(Protocol):
    """What the pipeline needs of the results store (``store.Store``)."""

    def sink(self) -> StoreSinkLike: ...
    def get_run(self, run_id: str) -> RunInfo: ...
    def discard_unfinished(self, run_id: str) -> None: ...
    def finished_lane_names(self, run_id: str) -> set[str]: ...
    def load_lanes(self, run_id: str) -> list[LaneResult]: ...


@dataclass(slots=True)
class RunPlan:
    """What a run will do: its plans grouped by server, the lanes a resume skips, and the
    config it measures with (a resumed run's has the stored job)."""

    plans: list[LanePlan]
    groups: list[list[LanePlan]]
    config: RunConfig
    skipped: set[str] = field(default_factory=set)
    run: RunInfo | None = None  # the stored run being resumed

    def builds(self) -> list[Build]:
        """Each build the plans name, once (the engine and ``build_info`` of its first plan)."""
        first: dict[str, LanePlan] = {}
        for plan in self.plans:
            first.setdefault(plan.build, plan)
        return [Build(p.engine, b, p.build_info) for b, p in first.items()]


@dataclass(slots=True)
class RunOutcome:
    run: RunInfo
    results: list[LaneResult]
    plan: RunPlan
    servers: int = 0
    per_request: dict[str, bool] = field(default_factory=dict)  # build -> honours request fields
    quality: QualityOutcome | None = None

    @property
    def failed(self) -> bool:
        return any(r.status == LaneStatus.FAILED for r in self.results)


def plan_run(
    lanes: Sequence[LaneSpec], config: RunConfig, store: ResultStore | None = None, resume: str | None = None
) -> RunPlan:
    """Plan the lanes (those ``resume`` has not measured yet); raises before anything starts."""
    stored: RunInfo | None = None
    done: set[str] = set()
    if resume:
        if store is None:
            from lanebench.errors import BadInput

            raise BadInput("--resume: needs the results database (drop --no-db)")
        stored = store.get_run(resume)
        config = config.with_job(stored.job)
        done = store.finished_lane_names(resume)
    plans = plan_lanes([lane for lane in lanes if lane.name not in done], config)
    if stored is not None:
        refuse_other_machine(stored, plans)
    if wants_quality(lanes, config):
        check_quality(plans, config)
    return RunPlan(plans, group_plans(plans, config.reuse), config, done, stored)


def run_lanes(
    lanes: Sequence[LaneSpec],
    config: RunConfig,
    sinks: Sequence[Sink] = (),
    *,
    store: ResultStore | None = None,
    resume: str | None = None,
    progress: Progress | None = None,
    say: Say | None = None,
) -> RunOutcome:
    """Plan, then measure every lane, writing to ``sinks`` (and ``store``) as measured; then
    score quality where asked. ``say`` gets a line per quality step, and one before anything
    starts when the machine is busy (watched for a second: only with ``say``, for lanes this run
    starts). A resumed run measures with the stored run's job."""
    rp = plan_run(lanes, config, store, resume)
    config = rp.config
    local = [p.lane.threads or default_threads() for p in rp.plans if p.engine.launches]
    if say is not None and local and (warning := busy_warning(max(local), config.job.remeasure_budget)):
        say(warning)
    builds = rp.builds()
    run = rp.run or new_run(config, {b.build: b.info for b in builds})
    kept = {}
    if resume and store is not None:
        kept = kept_lanes(store, resume, config.job, [p.lane.name for p in rp.plans])
        store.discard_unfinished(resume)
    stored: list[Sink] = []
    if store is not None:
        store_sink = store.sink()
        stored = [store_sink, FingerprintSink(store_sink, builds)]
    all_sinks = stored + list(sinks)
    for s in all_sinks:
        s.run_started(run)
    if progress is not None:
        progress.run_started(run, len(rp.plans), len(rp.skipped))
    measurer = LaneMeasurer(run, config, all_sinks, progress)
    measurer.lanes_left = len(rp.plans)
    measurer.kept = kept
    results: list[LaneResult] = []
    quality = None
    try:
        for group in rp.groups:
            results += measurer.measure_group(group)
        quality = apply_quality(results, rp.plans, config, run, all_sinks, say)
        run.status = (
            RunStatus.FAILED if any(r.status == LaneStatus.FAILED for r in results) else RunStatus.DONE
        )
    except BaseException:
        run.status = RunStatus.INTERRUPTED
        raise
    finally:
        run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        for s in all_sinks:
            s.run_finished(run)
    if resume and store is not None:
        results = store.load_lanes(run.run_id)
    return RunOutcome(run, results, rp, measurer.servers, dict(measurer.state.per_request), quality)
