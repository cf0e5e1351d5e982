"""The kernel view beside a lane: llama-bench with the lane's settings, run before its server starts.

On with ``run --baseline`` (the default with ``--full``) or a lane's ``baseline = true``. Runs with
the same llama-bench argvs (a sweep over block sizes, a speculative lane and its plain partner)
share one measurement. An engine other than llama.cpp, or a build without llama-bench beside its
server, gets a note instead of figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lanebench.busy.cpu import describe
from lanebench.busy.meter import LoadMeter
from lanebench.engines.base import LanePlan
from lanebench.engines.llamacpp.argv import rpc_endpoints
from lanebench.engines.llamacpp.llamabench import bench_argv, bench_beside, bench_flags, run_baseline
from lanebench.engines.llamacpp.rpc import find_rpc_server
from lanebench.engines.llamacpp.rpc_lane import LocalRpcServers
from lanebench.errors import LaneFailed
from lanebench.memory.proc import lane_pgids
from lanebench.orchestration.plan import RunOptions
from lanebench.records.baseline import BaselineRecord


def wants_baseline(plan: LanePlan, opts: RunOptions) -> bool:
    return opts.baseline or plan.lane.baseline


def baseline_for(
    plan: LanePlan,
    opts: RunOptions,
    cache: dict[str, BaselineRecord],
    log_path: Path | None = None,
    depth: int = 0,
) -> BaselineRecord | None:
    """The lane's kernel view; None when not asked for.

    ``depth``: tokens of context the job's requests continue (0: a fresh prompt); llama-bench
    prefills at ``depth`` and decodes at ``depth + n_in``, as the server does (two runs). A
    lane with ``rpc_local`` gets its own RPC servers for llama-bench's runs (logs beside
    ``log_path``), stopped before the lane's server starts: an RPC server serves one client."""
    if not wants_baseline(plan, opts):
        return None
    if plan.server_bin is None or plan.model is None:
        return BaselineRecord(
            note=f"engine {plan.engine.name!r}: no kernel view (llama-bench is llama.cpp's)"
        )
    bench = bench_beside(plan.server_bin)
    if bench is None:
        return BaselineRecord(note=f"no llama-bench beside {plan.server_bin}: no kernel view")
    lane, job, flags = plan.lane, opts.job, bench_flags(bench)
    if lane.rpc_count and "-rpc" not in flags:
        return BaselineRecord(note=f"{bench} has no -rpc (built without RPC): no kernel view")

    model = plan.model

    def argv_with(rpc: list[str]) -> tuple[list[str], list[str], list[str]]:
        return bench_argv(bench, flags, lane, model, job.n_in, job.n_out, opts.baseline_reps, rpc, depth)

    prefill, decode, notes = argv_with(rpc_endpoints(lane))  # local RPC ports as placeholders
    key = "\0".join([*prefill, "\n", *decode])
    if key not in cache:
        logs = log_path or opts.out_dir / f"{lane.name}-baseline.log"
        rpc_bin = find_rpc_server(plan.server_bin)
        label = f"lane {lane.name!r} (llama-bench)"
        try:
            with LocalRpcServers(label, logs, rpc_bin, list(lane.rpc_local), opts.load_timeout_s) as local:
                argv, decode_argv, _ = argv_with(rpc_endpoints(lane, local.ports))
                rpc_pids = [sp.proc.pid for sp in local.procs if sp.proc is not None]
                retry = opts.job.remeasure_budget > 0
                env = {**os.environ, **lane.env}
                cache[key] = metered_baseline(argv, decode_argv, env, rpc_pids, lane.threads, retry)
        except LaneFailed as exc:
            cache[key] = BaselineRecord(note=f"no kernel view: {exc}")
    shared = cache[key]
    note = "; ".join(n for n in [*notes, shared.note] if n)  # this lane's notes, then the run's
    return replace(shared, note=note)


def metered_baseline(
    argv: list[str],
    decode_argv: list[str],
    env: dict[str, str],
    rpc_leaders: Sequence[int],
    threads: int | None,
    retry: bool,
) -> BaselineRecord:
    """llama-bench with the machine's load while it ran (``load``); a run on a busy machine is
    run once more when ``retry`` (its repetitions run in one process: one window for all), and
    the second run is kept, busy or not, with a note."""
    meter = LoadMeter(lane_pgids(rpc_leaders), threads, children_are_lane=True)
    first: str = ""
    while True:
        start = meter.start()
        rec = run_baseline(argv, decode_argv, [], env=env)
        load = meter.stop(start)
        rec.load = load
        if load is None or not load.busy or first or not retry:
            break
        first = describe(load)
    if first:
        again = "busy again" if rec.load and rec.load.busy else "quiet"
        again_note = f"re-measured ({again}): the first run was busy, {first}"
        rec.note = "; ".join(n for n in (rec.note, again_note) if n)
    return rec
