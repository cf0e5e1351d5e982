"""The attribution experiment for a measured lane (``run --attribute``).

For every suspect that applies to the lane's build and settings (its engine's
``attribution_suspects``; llama.cpp's are in ``engines.llamacpp.suspects``), a fresh server
runs a few requests of the lane's job with that one suspect switched off; the control (the
lane as it runs) is run the same way before and after the variants. Servers run one at a time,
after the lane's own measurement, and every request is kept (``attribution.AttributionRecord``).
A server that fails is recorded in its arm and the next arm runs. An engine without suspects
gets a record whose note says why, and nothing starts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from lanebench.analysis.attribution import conclude
from lanebench.config.job import JobSpec
from lanebench.config.run import RunConfig
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import Unavailable
from lanebench.errors import LaneFailed
from lanebench.measure.job import LaneJob, RunState
from lanebench.records.attribution import CONTROL, CONTROL_AFTER, Arm, AttributionRecord
from lanebench.records.lane import LaneResult, LaneStatus


def experiment_job(opts: RunConfig) -> JobSpec:
    """The lane's job, ``attribute_reps`` single requests after at least one warm-up, no batches."""
    job = opts.job
    return JobSpec(
        n_in=job.n_in,
        n_out=job.n_out,
        reps=opts.attribute_reps,
        warmup=max(1, job.warmup),
        aggregate=0,
        seed=job.seed,
    )


def _run_arm(arm: Arm, plan: LanePlan, opts: RunConfig, state: RunState, log_path: Path) -> Arm:
    """Serve ``plan`` on a fresh server, run the experiment's job, keep every request."""
    scratch = LaneResult(name=plan.lane.name, lane=plan.lane)
    endpoint = plan.engine.endpoint(plan, log_path, opts.load_timeout_s)
    arm.argv, arm.log_path = list(plan.argv_preview), str(log_path)
    try:
        with endpoint:
            arm.argv = list(endpoint.argv) or arm.argv
            job = LaneJob(
                plan,
                endpoint,
                scratch,
                experiment_job(opts),
                lambda _rec: None,
                state=state,
                request_timeout_s=opts.request_timeout_s,
            )
            asyncio.run(job.run())
            endpoint.check_alive()
    except LaneFailed as exc:
        arm.error = str(exc).splitlines()[0][:300]
    arm.samples = scratch.samples
    return arm


def run_experiment(
    plan: LanePlan,
    opts: RunConfig,
    state: RunState,
    log_path: Callable[[str], Path],
    announce: Callable[[str], None] = lambda _text: None,
    on_arm: Callable[[AttributionRecord], None] = lambda _rec: None,
) -> AttributionRecord:
    """Control, one variant per applicable suspect, control again; see the module's docstring.
    ``on_arm`` gets the record after every server, so an interrupted experiment keeps its arms."""
    job = experiment_job(opts)
    rec = AttributionRecord(n_in=job.n_in, n_out=job.n_out, reps=job.reps, warmup=job.warmup)
    found = plan.engine.attribution_suspects(plan)
    if isinstance(found, Unavailable):
        rec.note = found.why
        return rec
    rec.skipped = found.skipped
    if not found.variants:
        rec.note = "no suspect applies to this lane on this build"
        return rec
    arms: list[tuple[Arm, LanePlan]] = [(Arm(CONTROL, "the lane as it runs"), plan)]
    arms += [(Arm(v.name, v.label, v.change), v.plan) for v in found.variants]
    arms.append((Arm(CONTROL_AFTER, "the lane as it runs, after the variants"), plan))
    for arm, arm_plan in arms:
        announce(f"{plan.lane.name}: attribution, {arm.name}")
        rec.arms.append(_run_arm(arm, arm_plan, opts, state, log_path(f"{plan.lane.name}-attr-{arm.name}")))
        on_arm(conclude(rec))
    return rec


def experiment_key(plan: LanePlan) -> str:
    """Lanes with the same server command line and environment share one experiment."""
    return json.dumps([plan.argv(0), plan.lane.env], sort_keys=True)


def attribution_for(
    plan: LanePlan,
    result: LaneResult,
    opts: RunConfig,
    state: RunState,
    cache: dict[str, AttributionRecord],
    log_path: Callable[[str], Path],
    announce: Callable[[str], None] = lambda _text: None,
    on_arm: Callable[[AttributionRecord], None] = lambda _rec: None,
) -> AttributionRecord | None:
    """The lane's experiment with its reading; None when not asked for or the lane failed.
    ``on_arm`` gets the record so far after every server of the experiment."""
    if not opts.attribute or result.status == LaneStatus.FAILED:
        return None
    found = plan.engine.attribution_suspects(plan)
    if isinstance(found, Unavailable):
        return AttributionRecord(note=found.why)  # nothing starts
    key = experiment_key(plan)
    if key not in cache:
        cache[key] = conclude(run_experiment(plan, opts, state, log_path, announce, on_arm))
    return cache[key]
