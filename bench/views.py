"""Three views of one lane's speed, measured in one run: kernels (llama-bench), engine (timings),
client (time to first token, stream rate), and the share of each loss.

    python bench/views.py [--model GGUF] [--server-bin PATH] [--n-in 1150] [--n-out 200] [--reps 3]
                          [--gpu-layers N] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lanebench.analysis.views import where_time_goes
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.models import default_model_path
from lanebench.config.run import RunConfig
from lanebench.orchestration import run_lanes
from lanebench.records.baseline import BaselineRecord


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--server-bin", type=Path, default=None)
    ap.add_argument("--n-in", type=int, default=1150)
    ap.add_argument("--n-out", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gpu-layers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    model = args.model or default_model_path()
    lane = LaneSpec(name="plain", model=model, slots=1, gpu_layers=args.gpu_layers, threads=args.threads)
    job = JobSpec(n_in=args.n_in, n_out=args.n_out, reps=args.reps, warmup=1, aggregate=0)
    with tempfile.TemporaryDirectory() as tmp:
        opts = RunConfig(out_dir=Path(tmp), server_bin=args.server_bin, baseline=True).with_job(job)
        (result,) = run_lanes([lane], opts).results
    base = BaselineRecord.from_dict(result.baseline or {})
    print(f"model: {model.name}; job {job.n_in} in / {job.n_out} out, {job.reps} reps")
    print(f"llama-bench {' '.join(base.argv[1:])}  # {base.prefill_test}")
    print(f"llama-bench {' '.join(base.decode_argv[1:])}  # {base.decode_test}")
    if base.note:
        print(f"note: {base.note}")
    for step in where_time_goes(result, job, base, result.log_tail):
        print(f"{step.figure}:")
        for view, tps in (
            ("kernel", step.kernel_tps),
            ("engine", step.engine_tps),
            ("client", step.client_tps),
        ):
            print(f"  {view:6} {tps:10,.1f} tok/s" if tps else f"  {view:6}          – ")
        for name, (pct, ms) in (
            ("kernel -> engine", step.kernel_to_engine),
            ("engine -> client", step.engine_to_client),
        ):
            if pct is not None and ms is not None:
                print(f"  {name}: {pct:5.1f}% of the rate, {ms:8,.1f} ms per request")
        k, c = step.kernel_tps, step.client_tps
        total = 1000 * (step.tokens / c - step.tokens / k) if k and c else None
        if total and total > 0:
            k_e = step.kernel_to_engine[1] or 0.0
            print(f"  share of the total loss ({total:,.1f} ms): kernel -> engine {100 * k_e / total:.0f}%, "
                  f"engine -> client {100 * (total - k_e) / total:.0f}%")  # fmt: skip
        for cause in step.causes:
            print(f"  - {cause}")


if __name__ == "__main__":
    main()
