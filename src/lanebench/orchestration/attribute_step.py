"""The attribution experiment for a measured lane (``run --attribute``).

For every known suspect that applies to the lane's build and settings (``engines.suspects``),
a fresh server runs a few requests of the lane's job with that one suspect switched off; the
control (the lane as it runs) is run the same way before and after the variants. Servers run
one at a time, after the lane's own measurement, and every request is kept
(``attribution.AttributionRecord``). A server that fails is recorded in its arm and the next
arm runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lanebench.analysis.attribution import conclude
from lanebench.config.job import JobSpec
from lanebench.engines.base import LanePlan
from lanebench.engines.llamacpp.dialect import Dialect
from lanebench.engines.llamacpp.suspects import Suspect, applicable
from lanebench.errors import LaneFailed
from lanebench.measure.job import LaneJob, RunState
from lanebench.orchestration.plan import RunOptions
from lanebench.records.attribution import CONTROL, CONTROL_AFTER, Arm, AttributionRecord
from lanebench.records.lane import LaneResult, LaneStatus


def experiment_job(opts: RunOptions) -> JobSpec:
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


def variant_plans(plan: LanePlan) -> tuple[list[tuple[Suspect, LanePlan]], list[list[str]]]:
    """(each applicable suspect with the lane's plan with it switched off, [name, why] skipped)."""
    dialect: Dialect = plan.dialect
    suspects, skipped = applicable(dialect, plan.lane)
    out = []
    for suspect in suspects:
        variant = replace(plan, lane=suspect.variant(dialect, plan.lane))
        variant.argv_preview = variant.argv(0)
        out.append((suspect, variant))
    return out, [list(s) for s in skipped]


def _run_arm(arm: Arm, plan: LanePlan, opts: RunOptions, state: RunState, log_path: Path) -> Arm:
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
    opts: RunOptions,
    state: RunState,
    log_path: Callable[[str], Path],
    announce: Callable[[str], None] = lambda _text: None,
    on_arm: Callable[[AttributionRecord], None] = lambda _rec: None,
) -> AttributionRecord:
    """Control, one variant per applicable suspect, control again; see the module's docstring.
    ``on_arm`` gets the record after every server, so an interrupted experiment keeps its arms."""
    job = experiment_job(opts)
    rec = AttributionRecord(n_in=job.n_in, n_out=job.n_out, reps=job.reps, warmup=job.warmup)
    variants, rec.skipped = variant_plans(plan)
    if not variants:
        rec.note = "no suspect applies to this lane on this build"
        return rec
    arms: list[tuple[Arm, LanePlan]] = [(Arm(CONTROL, "the lane as it runs"), plan)]
    arms += [(Arm(s.name, s.label, s.change(plan.dialect)), p) for s, p in variants]
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
    opts: RunOptions,
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
    if not plan.engine.launches or plan.server_bin is None or not isinstance(plan.dialect, Dialect):
        return AttributionRecord(
            note=f"engine {plan.engine.name!r}: no attribution (its suspects are llama-server's flags, "
            "switched on servers lanebench starts)"
        )
    key = experiment_key(plan)
    if key not in cache:
        cache[key] = conclude(run_experiment(plan, opts, state, log_path, announce, on_arm))
    return cache[key]
