"""Wall time of a 3-point draft block-size sweep: one shared server vs a restart per point.

Same lanes, same job, one run. Prints both walls, the servers each started, whether this build
honours per-request ``speculative.n_max`` (reuse needs it), and the ratio reuse / restart.

    python bench/sweep_reuse.py [--server-bin BIN] [--model GGUF] [--n-in 256] [--n-out 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.config.models import default_model_path
from lanebench.config.run import RunConfig
from lanebench.orchestration.grid import expand, group_plans, parse_grid
from lanebench.orchestration.measure_lane import LaneMeasurer
from lanebench.orchestration.plan import new_run, plan_lanes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server-bin", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--n-in", type=int, default=256)
    ap.add_argument("--n-out", type=int, default=64)
    ap.add_argument("--grid", default="draft.block_size=2,3,4")
    args = ap.parse_args()
    model = args.model or default_model_path()
    base = LaneSpec(name="self-draft", model=model, draft=Draft(kind="model", block_size=3), threads=2)
    lanes = expand([base], [parse_grid(args.grid)])
    job = JobSpec(n_in=args.n_in, n_out=args.n_out, reps=2, warmup=1, aggregate=0)
    with tempfile.TemporaryDirectory() as tmp:
        opts = RunConfig(out_dir=Path(tmp), server_bin=args.server_bin).with_job(job)
        plans = plan_lanes(lanes, opts)
        run = new_run(opts, {p.build: p.build_info for p in plans})

        t0 = time.perf_counter()
        restart = [LaneMeasurer(run, opts, []).measure(p) for p in plans]
        wall_restart = time.perf_counter() - t0

        t0 = time.perf_counter()
        sharing = LaneMeasurer(run, opts, [])
        reused = [r for group in group_plans(plans) for r in sharing.measure_group(group)]
        servers = sharing.servers
        wall_reuse = time.perf_counter() - t0

    supported = sharing.per_request_support(plans[0])
    print(f"build: {plans[0].dialect.version_text}")
    print(f"per-request speculative fields honoured: {supported}")
    print(
        f"job: {job.n_in} in / {job.n_out} out, {job.warmup} warm-up + {job.reps} reps, {len(plans)} points"
    )
    print(f"restart per point: {wall_restart:7.1f} s, {len(plans)} server starts")
    print(f"shared server:     {wall_reuse:7.1f} s, {servers} server starts")
    if supported:
        print(f"ratio shared / restart: {wall_reuse / wall_restart:.2f}")
    else:  # no reuse happened: a ratio would only measure noise between two identical schedules
        print("ratio shared / restart: not applicable: this build ignores per-request speculative fields")
    for a, b in zip(restart, reused, strict=True):
        da, db = a.summary.get("decode_tps"), b.summary.get("decode_tps")
        fa, fb = (x.median if x else float("nan") for x in (da, db))
        print(f"  {a.name}: decode {fa:.1f} (restart) vs {fb:.1f} (shared) tok/s")
    if not supported:
        print("note: this build echoes no per-request speculative.n_max: each point needs its own server;")
        print("      the shared server still serves the point it was started for.")


if __name__ == "__main__":
    main()
