"""The long fuzz campaign, run by hand: every target (or some), N mutated inputs each.

    python bench/fuzz.py --per-target 10000 [--targets a,b] [--seed N] [--out DIR] [--jobs J]

Prints, per target, the inputs run and how each ended (ok, clean error, traceback, hang,
memory), then the root-cause groups of every bad outcome with a reproducer each. Exits 1
if any input ended badly. Reproducers (and a .txt beside each) are written under --out.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.fuzz.harness import OUTCOMES, Result, Target, all_targets, fuzz  # noqa: E402


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-target", type=int, default=10_000, help="inputs per target")
    p.add_argument("--targets", default="", help="comma-separated target names (default: all)")
    p.add_argument("--seed", type=int, default=1, help="run seed (input i is the same for a seed)")
    p.add_argument("--out", type=Path, default=Path("fuzz-out"), help="folder for reproducers")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one input may take")
    return p.parse_args(argv)


def _select(names: str) -> list[Target]:
    targets = all_targets()
    if not names:
        return targets
    by_name = {t.name: t for t in targets}
    unknown = [n for n in names.split(",") if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names.split(",")]


def _table(results: list[Result]) -> Table:
    table = Table("target", "inputs", "ok", "clean errors", "tracebacks", "hangs", "memory", "seconds")
    for r in results:
        c = r.counts
        table.add_row(r.target, str(sum(c.values())), *(str(c[o]) for o in OUTCOMES), f"{r.seconds:.0f}")
    return table


def _causes(results: list[Result]) -> Table:
    table = Table("target", "count", "root cause", "example", title="root causes")
    for r in results:
        for cause, fs in r.groups().items():
            table.add_row(r.target, str(len(fs)), escape(cause), escape(str(fs[0].reproducer or fs[0].index)))
    return table


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    console = Console()
    if not console.is_terminal:  # piped: wide enough that the tables stay tables
        console = Console(width=160)
    results = []
    for t in _select(a.targets):
        r = fuzz(t, a.per_target, seed=a.seed, out_dir=a.out, jobs=a.jobs, timeout=a.timeout)
        console.print(f"{t.name}: {dict(r.counts)} in {r.seconds:.0f} s", highlight=False)
        results.append(r)
    console.print(_table(results))
    bad = sum(r.bad for r in results)
    if bad:
        console.print(_causes(results))
    console.print(
        f"seed {a.seed}, {a.per_target} inputs per target: {bad} bad outcome(s)"
        + (f"; reproducers under {a.out}" if bad else ""),
        highlight=False,
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
