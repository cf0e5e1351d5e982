"""llama.cpp's kernel view of a lane (``LlamaCpp.kernel_view``): the build's ``llama-bench``
with the lane's settings, planned as a ``KernelView`` and run before the lane's server starts.

A build without llama-bench beside its server, or without ``-rpc`` for an RPC lane, has none
(``Unavailable`` says which). Lanes whose llama-bench command lines are the same share one
measurement (the view's ``key``). A lane with ``rpc_local`` gets its own RPC servers for
llama-bench's runs, stopped before the lane's server starts: an RPC server serves one client.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lanebench.busy.cpu import describe
from lanebench.busy.meter import LoadMeter
from lanebench.config.job import JobSpec
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import KernelView, Unavailable
from lanebench.engines.llamacpp.argv import rpc_endpoints
from lanebench.engines.llamacpp.llamabench import bench_argv, bench_beside, bench_flags, run_baseline
from lanebench.engines.llamacpp.rpc import find_rpc_server
from lanebench.engines.llamacpp.rpc_lane import LocalRpcServers
from lanebench.memory.proc import lane_pgids
from lanebench.records.baseline import BaselineRecord


def kernel_view(plan: LanePlan, job: JobSpec, reps: int, depth: int = 0) -> KernelView | Unavailable:
    """llama-bench for the lane: it prefills ``job.n_in`` tokens at ``depth`` and decodes
    ``job.n_out`` at ``depth + n_in``, as the server does (two runs of ``reps`` repetitions)."""
    assert plan.server_bin is not None and plan.model is not None
    server_bin, model, lane = plan.server_bin, plan.model, plan.lane
    bench = bench_beside(server_bin)
    if bench is None:
        return Unavailable(f"no llama-bench beside {server_bin}: no kernel view")
    flags = bench_flags(bench)
    if lane.rpc_count and "-rpc" not in flags:
        return Unavailable(f"{bench} has no -rpc (built without RPC): no kernel view")

    def argv_with(rpc: list[str]) -> tuple[list[str], list[str], list[str]]:
        return bench_argv(bench, flags, lane, model, job.n_in, job.n_out, reps, rpc, depth)

    prefill, decode, notes = argv_with(rpc_endpoints(lane))  # local RPC ports as placeholders

    def measure(log_path: Path, load_timeout_s: float, retry: bool) -> BaselineRecord:
        label = f"lane {lane.name!r} (llama-bench)"
        rpc_bin = find_rpc_server(server_bin)
        with LocalRpcServers(label, log_path, rpc_bin, list(lane.rpc_local), load_timeout_s) as local:
            argv, decode_argv, _ = argv_with(rpc_endpoints(lane, local.ports))
            rpc_pids = [sp.proc.pid for sp in local.procs if sp.proc is not None]
            env = {**os.environ, **lane.env}
            return metered_baseline(argv, decode_argv, env, rpc_pids, lane.threads, retry)

    return KernelView("\0".join([*prefill, "\n", *decode]), notes, measure)


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
