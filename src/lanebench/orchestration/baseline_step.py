"""The kernel view beside a lane: llama-bench with the lane's settings, run before its server starts.

On with ``run --baseline`` (the default with ``--full``) or a lane's ``baseline = true``. Runs with
the same llama-bench argv (a sweep over block sizes, a speculative lane and its plain partner)
share one measurement. An engine other than llama.cpp, or a build without llama-bench beside its
server, gets a note instead of figures.
"""

from __future__ import annotations

import os
from typing import Any

from lanebench.engines.base import LanePlan
from lanebench.engines.llamabench import BaselineRecord, bench_argv, bench_beside, bench_flags, run_baseline
from lanebench.orchestration.plan import RunOptions


def wants_baseline(plan: LanePlan, opts: RunOptions) -> bool:
    return opts.baseline or plan.lane.baseline


def baseline_for(plan: LanePlan, opts: RunOptions, cache: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The lane's kernel view as a ``BaselineRecord`` dict; None when not asked for."""
    if not wants_baseline(plan, opts):
        return None
    if plan.server_bin is None or plan.model is None:
        return BaselineRecord(
            note=f"engine {plan.engine.name!r}: no kernel view (llama-bench is llama.cpp's)"
        ).to_dict()
    bench = bench_beside(plan.server_bin)
    if bench is None:
        return BaselineRecord(note=f"no llama-bench beside {plan.server_bin}: no kernel view").to_dict()
    job = opts.job
    argv, notes = bench_argv(
        bench, bench_flags(bench), plan.lane, plan.model, job.n_in, job.n_out, opts.baseline_reps
    )
    key = "\0".join(argv)
    if key not in cache:
        cache[key] = run_baseline(argv, [], env={**os.environ, **plan.lane.env}).to_dict()
    shared = cache[key]
    note = "; ".join(n for n in [*notes, shared["note"]] if n)  # this lane's notes, then the run's
    return {**shared, "note": note}
