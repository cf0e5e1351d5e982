"""Benchmark ``lanebench synth``: MB/s written and peak RSS of a shape-faithful random model.

Each run synthesises the preset's main model (the embedded 270M's vocabulary) in a fresh child
process into a temporary folder, timing ``synth_main`` (fsync included: bytes on disk, not in
the page cache) and reading the child's peak RSS (``ru_maxrss``); the file is deleted after.
``--layers`` cuts the preset to its first N layers (default 12 of 26b-a4b: 5.9 GB at Q4_0, the
model issue 11 timed at 295 s); ``--layers 0`` keeps them all.

    python bench/synth.py [--preset 26b-a4b] [--layers 12] [--type q4_0,q8_0] [--dir DIR] [--reps 1]

Goals (issue 11): >= 300 MB/s for Q4_0 / Q8_0 on a 2-core CPU (>= 1 GB/s on a 16-core GPU
machine), peak RSS bounded: the same for a 2-layer and a full model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from dataclasses import replace
from pathlib import Path
from lanebench.gguf import shapes
from lanebench.gguf.quant import SYNTH_QTYPES, parse_qtype
from lanebench.gguf.synth import synth_main
from lanebench.config.models import default_model_path
preset, layers, qtype, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
tok = Path(sys.argv[5]) if sys.argv[5] else default_model_path()
main, _ = shapes.preset(preset)
if layers:
    types = list(main.layer_types[:layers])
    types[-1] = shapes.FULL  # gemma4 ends on a full-attention layer
    main = replace(main, layer_types=tuple(types))
t0 = time.perf_counter()
size = synth_main(out, main, tok, parse_qtype(qtype, "--type", SYNTH_QTYPES))
wall = time.perf_counter() - t0
print(json.dumps({"bytes": size, "wall_s": wall, "layers": main.n_layer,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run_once(preset: str, layers: int, qtype: str, folder: Path, tok: Path | None = None) -> dict[str, float]:
    out = folder / f"synth-{preset}-{qtype}.gguf"
    try:
        argv = [sys.executable, "-c", CHILD, preset, str(layers), qtype, str(out), str(tok or "")]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"synth failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        out.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="26b-a4b", help="tiny | tiny-moe | 12b | 26b-a4b | 31b")
    ap.add_argument("--layers", type=int, default=12, help="first N layers of the preset (0: all)")
    ap.add_argument("--type", default="q4_0,q8_0", help="comma-separated: q4_0, q8_0, f16, bf16, f32")
    ap.add_argument("--dir", type=Path, default=None, help="folder to write in (default: a temp dir)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument(
        "--tokenizer-from", type=Path, default=None, help="GGUF whose vocabulary to copy (default: the 270M)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanebench-bench-synth-", dir=args.dir) as tmp:
        print(f"writing in {tmp} (each file deleted after its run)")
        for qtype in args.type.split(","):
            for _ in range(args.reps):
                s = run_once(args.preset, args.layers, qtype, Path(tmp), args.tokenizer_from)
                mb = s["bytes"] / 1e6
                print(
                    f"{args.preset} ({int(s['layers'])} layers) {qtype}: {mb:,.0f} MB in {s['wall_s']:.1f} s "
                    f"= {mb / s['wall_s']:,.0f} MB/s; peak RSS {s['maxrss_kib'] / 1024:,.0f} MiB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
