"""Benchmark ``convert-head``: throughput (MB/s of source) and peak RSS vs the largest tensor.

Synthesises (once, in WORKDIR) an HF assistant checkpoint of the real Gemma 4 26B-A4B head's
shape (4 layers, 1024 wide, FFN 8192, backbone 2816, vocabulary 262,144; BF16, ≈ 0.9 GB;
≈ 440 MB at Q8_0) and a 2-layer main model of the real width carrying the real vocabulary.
Each repetition converts in a fresh child process pinned to one core, which reports its own
wall time around ``convert_head`` and its peak RSS (``ru_maxrss``).

    python bench/convert_head.py [--workdir DIR] [--reps 3] [--type q8_0]

Goals: ≥ 150 MB/s of source on one core; peak RSS ≤ 2 × largest tensor + 200 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
from lanebench.gguf.convert import ConvertOptions, convert_head
from lanebench.gguf.quant import parse_qtype
hf, main, out, qtype = sys.argv[1:5]
t0 = time.perf_counter()
r = convert_head(ConvertOptions(Path(hf), Path(main), Path(out), parse_qtype(qtype), force=True))
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "source_bytes": r.source_bytes, "largest": r.largest_source_tensor,
                  "out_bytes": r.out_bytes,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def prepare(work: Path) -> tuple[Path, Path]:
    """The main model and HF checkpoint (made once; reused on later runs)."""
    from lanebench.config.models import default_model_path
    from lanebench.gguf import shapes
    from lanebench.gguf.synth import synth_assistant, synth_main

    main_shape, head_shape = shapes.preset("26b-a4b")
    small_main = replace(main_shape, layer_types=(shapes.SWA, shapes.FULL), ffn=256, n_expert=0,
                         n_expert_used=0, expert_ffn=0)  # fmt: skip
    main, hf = work / "main-26b-width.gguf", work / "assistant-26b-a4b"
    if not main.exists():
        print(f"synth {main} ...", flush=True)
        synth_main(main, small_main, default_model_path())
    if not (hf / "config.json").exists():
        print(f"synth {hf} ...", flush=True)
        synth_assistant(hf, main_shape, head_shape, "Gemma4AssistantForCausalLM")
    return main, hf


def run_once(hf: Path, main: Path, out: Path, qtype: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(hf), str(main), str(out), qtype],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lanebench-bench-convert")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--type", default="q8_0")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    main_gguf, hf = prepare(args.workdir)
    out = args.workdir / f"head-{args.type}.gguf"
    run_once(hf, main_gguf, out, args.type)  # warm-up: page cache, imports
    samples = [run_once(hf, main_gguf, out, args.type) for _ in range(args.reps)]
    mb = 1e6
    rates = [s["source_bytes"] / s["wall_s"] / mb for s in samples]
    rss = max(s["maxrss_kib"] * 1024 for s in samples)
    largest = samples[0]["largest"]
    limit = 2 * largest + 200 * mb
    rate = statistics.median(rates)
    print(
        f"source {samples[0]['source_bytes'] / mb:.0f} MB (BF16) -> "
        f"{samples[0]['out_bytes'] / mb:.0f} MB ({args.type})"
    )
    print(f"throughput: median {rate:.0f} MB/s of source (min {min(rates):.0f}, max {max(rates):.0f}; "
          f"{len(rates)} reps, one core)  goal >= 150: {'PASS' if rate >= 150 else 'FAIL'}")  # fmt: skip
    print(f"peak RSS: {rss / mb:.0f} MB; largest tensor {largest / mb:.0f} MB; "
          f"limit 2x+200 = {limit / mb:.0f} MB"
          f"  goal: {'PASS' if rss <= limit else 'FAIL'}")  # fmt: skip
    print("raw samples:", json.dumps(samples))


if __name__ == "__main__":
    main()
