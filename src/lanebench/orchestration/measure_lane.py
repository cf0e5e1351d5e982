"""Measuring planned lanes: serve, run the job, record as measured, stop.

A lane that fails (engine died, timeout, unreachable endpoint) is recorded with its log tail
and the next lane runs. Lanes that differ only in fields a request can carry share one server
when the engine honours those fields (asked of the build once per run, never assumed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import aiohttp

from lanebench.analysis.finished_cells import KeptCells
from lanebench.busy.meter import LoadMeter
from lanebench.config.job import JobSpec
from lanebench.config.run import RunConfig
from lanebench.engines.base import Endpoint, LanePlan
from lanebench.errors import LaneFailed
from lanebench.measure.envelope import EnvelopeJob
from lanebench.measure.job import LaneJob, RunState
from lanebench.orchestration.attribute_step import attribution_for
from lanebench.orchestration.baseline_step import baseline_for, wants_baseline
from lanebench.orchestration.envelope_step import summarize_envelope
from lanebench.orchestration.grid import speculative_fields
from lanebench.orchestration.memory_step import lane_leaders, measured
from lanebench.orchestration.plan import requests_per_lane
from lanebench.records.attribution import AttributionRecord
from lanebench.records.baseline import BaselineRecord
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord
from lanebench.store.sinks import Sink


class Progress(Protocol):
    def run_started(self, run: RunInfo, lanes: int, skipped: int) -> None: ...
    def loading(self, lane: str) -> None: ...
    def requests(self, lane: str, done: int, total: int) -> None: ...
    def lane_done(self, lane: str) -> None: ...


class SampleOut:
    """Where a lane's samples go as they are measured: every sink, and the progress bar. It knows
    the lane by name only: the job hands it records, never the lane."""

    def __init__(
        self, name: str, run: RunInfo, sinks: Sequence[Sink], job: JobSpec, progress: Progress | None
    ) -> None:
        self.name, self.run, self.sinks, self.job, self.progress = name, run, sinks, job, progress
        self.done = 0

    def __call__(self, rec: RequestRecord | AggregateRecord) -> None:
        if isinstance(rec, RequestRecord):
            self.done += 1
            if self.progress:
                # re-measured busy repetitions come on top of the planned requests
                total = max(self.done, requests_per_lane(self.job))
                self.progress.requests(self.name, self.done, total)
        for s in self.sinks:
            s.sample(self.run, self.name, rec)


class _Recorder:
    """One lane's result: announces it to the sinks, hands its samples out, finishes it."""

    def __init__(
        self, plan: LanePlan, run: RunInfo, sinks: Sequence[Sink], job: JobSpec, progress: Progress | None
    ) -> None:
        self.plan, self.run, self.sinks, self.job, self.progress = plan, run, sinks, job, progress
        self.result = LaneResult(name=plan.lane.name, lane=plan.lane, argv=plan.argv_preview)
        self.emit = SampleOut(plan.lane.name, run, sinks, job, progress)
        self.kernels: dict[int, BaselineRecord] = {}  # the envelope's kernel view per depth
        self.kept: KeptCells | None = None
        for s in sinks:
            s.lane_started(run, self.result)

    def keep(self, kept: KeptCells) -> None:
        """Write the cells a resume keeps into this lane, as if measured now (they were, by an
        earlier server of it); ``finish`` flags the lane with how many."""
        self.kept = kept
        self.result.samples += kept.samples
        self.result.aggregates += kept.aggregates
        for r in kept.records:
            self.emit(r)

    def fail(self, exc: LaneFailed, log_tail: str) -> None:
        r = self.result
        r.status, r.error, r.log_tail = LaneStatus.FAILED, str(exc), exc.log_tail or log_tail

    def finish(self) -> LaneResult:
        """The lane's result as measured (its job summarised its figures), with the envelope's
        cells, a resume's kept cells and the backends its log named; written to every sink."""
        if self.job.envelope:
            kept = self.kept.samples if self.kept is not None else ()
            summarize_envelope(self.result, self.job, self.kernels.get, kept)
        if self.kept is not None:
            self.result.flags.append(self.kept.flag())
            if self.result.status == LaneStatus.OK:
                self.result.status = LaneStatus.FLAGGED
        log = self.result.log_path
        self.result.backends = self.plan.engine.backends(Path(log) if log else None)
        for s in self.sinks:
            s.lane_finished(self.run, self.result)
        if self.progress:
            self.progress.lane_done(self.result.name)
        return self.result


class LaneMeasurer:
    """Measures plans for one run; holds what the run learns once (``RunState``)."""

    def __init__(
        self, run: RunInfo, opts: RunConfig, sinks: Sequence[Sink], progress: Progress | None = None
    ) -> None:
        self.run, self.opts, self.sinks, self.progress = run, opts, sinks, progress
        self.state = RunState()
        self.servers = 0
        self.baselines: dict[str, BaselineRecord] = {}  # llama-bench argv -> its record, once per run
        self.attributions: dict[str, AttributionRecord] = {}  # server argv -> its experiment, once per run
        self.lanes_left = 1  # lanes still to measure (the pipeline sets it): they share a --budget
        self.kept: dict[str, KeptCells] = {}  # a resume's complete cells of interrupted lanes, by name
        budget = opts.job.budget_s
        self.deadline = time.monotonic() + budget if budget else None

    def _baseline(self, plan: LanePlan, depth: int | None = None) -> BaselineRecord | None:
        """The kernel view at ``depth`` (the envelope's smallest when None)."""
        if self.progress and wants_baseline(plan, self.opts):
            self.progress.loading(f"{plan.lane.name}: llama-bench (kernel view)")
        at = min(self.opts.job.depth_levels) if depth is None else depth
        log = self._log_path(f"{plan.lane.name}-baseline")
        return baseline_for(plan, self.opts, self.baselines, log, depth=at)

    def _kernels(self, plan: LanePlan) -> dict[int, BaselineRecord]:
        """The envelope's kernel view at each of its depths (before the lane's server starts)."""
        if not self.opts.job.envelope or not wants_baseline(plan, self.opts):
            return {}
        out = {}
        for depth in self.opts.job.depth_levels:
            if (rec := self._baseline(plan, depth)) is not None:
                out[depth] = rec
        return out

    def _lane_deadline(self) -> float | None:
        """With a budget, this lane's share of the time left: the end its cells must fit in."""
        if self.deadline is None:
            return None
        left = max(self.deadline - time.monotonic(), 0.0)
        return time.monotonic() + left / max(self.lanes_left, 1)

    def _attribute(self, plan: LanePlan, result: LaneResult) -> None:
        """The attribution experiment once the lane's own servers are stopped; the finished lane
        is written to the sinks again after every server of it (an interrupt keeps what ran)."""

        def announce(text: str) -> None:
            if self.progress:
                self.progress.loading(text)

        def keep(record: AttributionRecord) -> None:
            result.attribution = record
            for s in self.sinks:
                s.lane_finished(self.run, result)

        record = attribution_for(
            plan, result, self.opts, self.state, self.attributions, self._log_path, announce, keep
        )
        if record is not None:
            keep(record)

    def _log_path(self, label: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
        return self.opts.out_dir / f"{self.run.run_id}-{safe}.log"

    def _endpoint(self, plan: LanePlan, label: str) -> Endpoint:
        if plan.engine.launches:
            self.servers += 1
        return plan.engine.endpoint(plan, self._log_path(label), self.opts.load_timeout_s)

    def _run_job(self, plan: LanePlan, endpoint: Endpoint, rec: _Recorder, per_request: bool) -> None:
        """Run the lane's job on its started ``endpoint``, after asking the engine what it started:
        the lane's process groups (none of a server lanebench did not start: their memory is
        sampled, and what else runs beside them metered), and where the model runs."""
        rec.result.load_s = endpoint.load_s
        rec.result.argv = list(endpoint.argv) or rec.result.argv
        rec.result.log_path = str(endpoint.log_path) if endpoint.log_path else None
        sources = plan.engine.memory_sources(plan, endpoint)
        rec.result.placement = plan.engine.placement(plan, endpoint)
        leaders = lane_leaders(sources)
        kind = EnvelopeJob if self.opts.job.envelope else LaneJob
        job = kind(
            plan,
            endpoint,
            rec.result,
            self.opts.job,
            rec.emit,
            state=self.state,
            request_timeout_s=self.opts.request_timeout_s,
            speculative=speculative_fields(plan.lane) if per_request else None,
            meter=LoadMeter.for_lane(leaders, plan.lane.threads) if leaders else None,
        )
        if isinstance(job, EnvelopeJob):
            job.deadline = self._lane_deadline()
            if (kept := self.kept.pop(plan.lane.name, None)) is not None:
                rec.keep(kept)
                job.done_cells = kept.cells
        try:
            with measured(plan, sources, rec.result):
                asyncio.run(job.measure())
        finally:
            self.lanes_left = max(self.lanes_left - 1, 1)
        endpoint.check_alive()

    def measure(self, plan: LanePlan) -> LaneResult:
        """Serve the lane, run the job, stop; failures are recorded, not raised."""
        rec = _Recorder(plan, self.run, self.sinks, self.opts.job, self.progress)
        rec.kernels = self._kernels(plan)  # before the server starts: nothing else running
        rec.result.baseline = self._baseline(plan)
        if self.progress:
            self.progress.loading(plan.lane.name)
        endpoint = self._endpoint(plan, plan.lane.name)
        try:
            with endpoint:
                self._run_job(plan, endpoint, rec, False)
        except LaneFailed as exc:
            rec.fail(exc, endpoint.log_tail())
        return rec.finish()

    def per_request_support(self, plan: LanePlan) -> bool | None:
        """Whether ``plan``'s build honours per-request speculative fields; None if not asked yet."""
        return self.state.per_request.get(plan.build)

    def _ask_per_request(self, plan: LanePlan, endpoint: Endpoint) -> bool:
        async def ask() -> bool:
            async with aiohttp.ClientSession() as session:
                return await plan.engine.supports_per_request(session, endpoint)

        return self.state.per_request.setdefault(plan.build, asyncio.run(ask()))

    def measure_group(self, plans: Sequence[LanePlan]) -> list[LaneResult]:
        """Measure a group of lanes, then run each one's attribution experiment (if asked)."""
        results = self._measure_group(plans)
        for plan, result in zip(plans, results, strict=True):
            self._attribute(plan, result)
        return results

    def _measure_group(self, plans: Sequence[LanePlan]) -> list[LaneResult]:
        """A group on one server if the build allows, else one server each.

        The shared server is started for the widest block size; if the build turns out to
        ignore per-request fields, it still serves the point it was started for."""
        first = plans[0]
        if (
            len(plans) == 1
            or not first.engine.per_request_speculative
            or self.per_request_support(first) is False
        ):
            return [self.measure(p) for p in plans]
        widest = _widest(plans)
        bases = {p.lane.name: self._baseline(p) for p in plans}  # before the shared server starts
        if self.progress:
            self.progress.loading(first.lane.name)
        endpoint = self._endpoint(widest, first.lane.name + " (shared)")
        done: dict[str, LaneResult] = {}
        try:
            with endpoint:
                supported = self._ask_per_request(first, endpoint)
                same = [p for p in plans if p.argv(0) == widest.argv(0)]
                mine = list(plans) if supported else same[:1]
                for plan in mine:
                    rec = _Recorder(plan, self.run, self.sinks, self.opts.job, self.progress)
                    rec.result.baseline = bases[plan.lane.name]
                    try:
                        self._run_job(plan, endpoint, rec, supported)
                        done[plan.lane.name] = rec.finish()
                    except LaneFailed as exc:
                        rec.fail(exc, endpoint.log_tail())
                        done[plan.lane.name] = rec.finish()
                        break
        except LaneFailed:
            pass
        for p in plans:
            if p.lane.name not in done:
                done[p.lane.name] = self.measure(p)
        return [done[p.lane.name] for p in plans]


def _widest(plans: Sequence[LanePlan]) -> LanePlan:
    """The group's server plan: the largest block size, so every point's n_max fits.

    The group's plans were all resolved and checked already and differ only in request fields,
    so this re-uses the first one's binary, dialect, model and context instead of re-planning.
    """
    first = plans[0]
    if first.lane.draft is None:
        return first
    widest = max(p.lane.draft.block_size for p in plans if p.lane.draft)
    draft = first.lane.draft.model_copy(update={"block_size": widest, "p_min": None})
    plan = replace(first, lane=first.lane.model_copy(update={"draft": draft}))
    plan.argv_preview = plan.argv(0)
    return plan
