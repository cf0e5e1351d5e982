"""What ``--quality`` costs: wall time of the quality step on the built-in lanes, and its share
of a default run.

Runs ``lanebench run --quality`` once (the built-in lanes on the 270M, default job) as a
subprocess and splits its wall time with the run's own report: the quality step's seconds
(every llama-perplexity run: the reference's base file, then one per distinct model + KV +
flash attention) against the rest (the speed measurement). Prints the tokens scored and each
lane's KLD with its error, so a user can trade time for precision (the error shrinks about as
1/sqrt(tokens)). Goal: at most 50% extra wall for a 4,096-token slice on the 270M.

    python bench/quality_cost.py [--quality-tokens N] [-- extra lanebench run flags]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.5


def main() -> None:
    args = sys.argv[1:]
    tokens = "4096"
    if args[:1] == ["--quality-tokens"]:
        tokens, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "lanebench.cli.main", "run", "--no-db", "--quality",
               "--quality-tokens", tokens, "--json", str(out), *args]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"lanebench run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        doc = json.loads(out.read_text())
    m = re.search(
        r"quality: ([\d,]+) tokens scored .*?; (\d+) llama-perplexity run\(s\), (\d+) s", proc.stderr
    )
    if m is None:
        sys.exit(f"no quality line in lanebench's output:\n{proc.stderr[-2000:]}")
    scored, runs, q_s = int(m[1].replace(",", "")), int(m[2]), float(m[3])
    speed_s = wall - q_s
    print(f"command: {' '.join(cmd[2:])}")
    print(
        f"run wall {wall:.0f} s = speed {speed_s:.0f} s + quality {q_s:.0f} s ({runs} llama-perplexity runs)"
    )
    share = q_s / speed_s
    print(f"quality adds {100 * share:.0f}% to the run's wall (goal <= {100 * GOAL:.0f}%: "
          f"{'met' if share <= GOAL else 'NOT met'}); {scored:,} tokens scored")  # fmt: skip
    for lane in doc["lanes"]:
        q = lane.get("quality") or {}
        kld = q.get("kld_mean")
        err = q.get("kld_err")
        figs = "–" if kld is None else f"KLD {kld:.5f}" + (f" ± {err:.5f}" if err is not None else "")
        top1 = q.get("same_top1")
        figs += f", same top-1 {top1:.2f}%" if top1 is not None else ""
        print(f"  {lane['name']}: {q.get('status')}: {figs}; greedy {q.get('greedy')}; {q.get('note') or ''}")


if __name__ == "__main__":
    main()
