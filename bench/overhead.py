"""Share of a default ``lanebench run``'s wall spent outside measured generation.

Runs ``lanebench run`` (the built-in lanes, default job unless flags say otherwise) as a
subprocess, then splits its wall time using the run's own JSON: server loads, warm-up requests,
measured requests (single requests and aggregate batches), and the rest (Python start-up,
planning, tokenising the corpus, /metrics, writing results, stopping servers).

    python bench/overhead.py [-- extra lanebench run flags, e.g. --n-out 64]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    extra = sys.argv[1:]
    if extra[:1] == ["--"]:
        extra = extra[1:]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "lanebench.cli.main", "run", "--no-db", "--json", str(out), *extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 4):
            sys.exit(f"lanebench run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        doc = json.loads(out.read_text())
    load = warm = measured = 0.0
    for lane in doc["lanes"]:
        load += lane.get("load_s") or 0.0
        for s in lane["samples"]:
            if s["kind"] == "warmup":
                warm += s["wall_s"] or 0.0
            elif s["kind"] == "single":
                measured += s["wall_s"] or 0.0
        measured += sum(a["wall_s"] for a in lane["aggregates"])
    other = wall - load - warm - measured
    job = doc["run"]["job"]
    print(
        f"lanebench run {' '.join(extra)}: {len(doc['lanes'])} lanes, "
        f"job {job['n_in']} in / {job['n_out']} out"
    )
    print(f"total wall            {wall:7.1f} s")
    for name, v in (
        ("measured generation", measured),
        ("server loads", load),
        ("warm-up requests", warm),
        ("everything else", other),
    ):
        print(f"{name:21} {v:7.1f} s  {100 * v / wall:5.1f}%")
    print(f"outside measured generation: {100 * (wall - measured) / wall:.1f}%")


if __name__ == "__main__":
    main()
