"""The kernel view beside a lane, run before its server starts: what the engine's
``kernel_view`` hook plans (llama.cpp: llama-bench with the lane's settings).

On with ``run --baseline`` (the default with ``--full``) or a lane's ``baseline = true``. Lanes
whose views have the same key (a sweep over block sizes, a speculative lane and its plain
partner) share one measurement per run. An engine without a kernel view, or a build without
the tool, gets a note saying why instead of figures.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lanebench.config.run import RunConfig
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import Unavailable
from lanebench.errors import LaneFailed
from lanebench.records.baseline import BaselineRecord


def wants_baseline(plan: LanePlan, opts: RunConfig) -> bool:
    return opts.baseline or plan.lane.baseline


def baseline_for(
    plan: LanePlan,
    opts: RunConfig,
    cache: dict[str, BaselineRecord],
    log_path: Path | None = None,
    depth: int = 0,
) -> BaselineRecord | None:
    """The lane's kernel view; None when not asked for.

    ``depth``: tokens of context the job's requests continue (0: a fresh prompt); the view
    prefills at ``depth`` and decodes at ``depth + n_in``, as the server does. ``cache`` holds
    the run's measurements by the view's key; helper processes log beside ``log_path``."""
    if not wants_baseline(plan, opts):
        return None
    view = plan.engine.kernel_view(plan, opts.job, opts.baseline_reps, depth)
    if isinstance(view, Unavailable):
        return BaselineRecord(note=view.why)
    if view.key not in cache:
        logs = log_path or opts.out_dir / f"{plan.lane.name}-baseline.log"
        retry = opts.job.remeasure_budget > 0
        try:
            cache[view.key] = view.measure(logs, opts.load_timeout_s, retry)
        except LaneFailed as exc:
            cache[view.key] = BaselineRecord(note=f"no kernel view: {exc}")
    shared = cache[view.key]
    note = "; ".join(n for n in [*view.notes, shared.note] if n)  # this lane's notes, then the run's
    return replace(shared, note=note)
