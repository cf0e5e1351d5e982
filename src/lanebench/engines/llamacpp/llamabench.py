"""The kernel view of a lane: the build's own ``llama-bench`` with the lane's settings.

llama-bench runs the model's kernels with no server, no HTTP and no sampler over the vocabulary:
the fastest the build can prefill ``n_in`` tokens after ``depth`` tokens of context
(``pp n_in @ d depth``) and decode ``n_out`` after ``depth + n_in`` (``tg n_out @ d depth+n_in``),
which is where the server prefills and decodes the same job. Beside the engine's ``timings``
and the client's clock it is the first of the three views of a lane's speed. Its flags are read
from its own ``--help`` (as the server's are); a setting it has no flag for is left at its
default and named in the record's note (``engines.bench_args`` maps ``extra_args``).
Speculative lanes get the plain model's baseline (llama-bench does not draft), and say so.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from lanebench.config.lanes import LaneSpec
from lanebench.engines.llamacpp.bench_args import map_extra_args
from lanebench.records.baseline import BaselineRecord
from lanebench.server.exitcause import last_cause_line

BENCH_NAME = "llama-bench"
_FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def bench_beside(server_bin: Path) -> Path | None:
    """``llama-bench`` in the same folder as ``server_bin``, if it is there and executable."""
    path = Path(server_bin).with_name(BENCH_NAME)
    return path if path.is_file() else None


def parse_flags(help_text: str) -> frozenset[str]:
    """Every option llama-bench's ``--help`` lists (the heads of its option lines)."""
    flags: set[str] = set()
    for line in help_text.splitlines():
        head = line.strip().split("  ")[0]
        if head.startswith("-"):
            flags.update(_FLAG.findall(head))
    return frozenset(flags)


@lru_cache(maxsize=16)
def bench_flags(binary: Path) -> frozenset[str]:
    try:
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return parse_flags(out.stdout + out.stderr)


def _lane_settings(
    flags: frozenset[str], lane: LaneSpec, rpc: Sequence[str]
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """The lane's fields, then its ``extra_args``, as llama-bench (flag, value) pairs; notes for
    what this llama-bench cannot take."""
    pairs: list[tuple[str, str | None]] = []
    notes: list[str] = []
    wanted: list[tuple[str, str | None, str]] = [
        ("-t", str(lane.threads) if lane.threads is not None else None, "threads"),
        ("-ngl", str(lane.gpu_layers) if lane.gpu_layers is not None else None, "gpu_layers"),
        ("-ctk", lane.kv, "kv"),
        ("-ctv", lane.kv, "kv"),
        ("-fa", lane.flash_attn, "flash_attn"),
        ("-rpc", ",".join(rpc) if rpc else None, "rpc"),
        ("-sm", lane.split_mode, "split_mode"),
        ("-mg", str(lane.main_gpu) if lane.main_gpu is not None else None, "main_gpu"),
        ("-ts", "/".join(f"{v:g}" for v in lane.tensor_split) if lane.tensor_split else None, "tensor_split"),
        ("-dev", "/".join(lane.devices) if lane.devices else None, "devices"),
    ]
    for flag, value, name in wanted:
        if value is None:
            continue
        if flag in flags:
            pairs.append((flag, value))
        elif f"lane field {name!r}" not in " ".join(notes):
            notes.append(f"this llama-bench has no {flag}: lane field {name!r} left at its default")
    extra = map_extra_args(lane.extra_args, flags)
    return pairs + extra.args, notes + extra.notes()


def _merged(pairs: list[tuple[str, str | None]]) -> list[str]:
    """Pairs as argv, one value per flag (llama-bench sweeps a flag given twice): a later value
    replaces an earlier one, except tensor overrides, which add up (``;``)."""
    values: dict[str, str | None] = {}
    for flag, value in pairs:
        if flag == "-ot" and values.get(flag) and value:
            values[flag] = f"{values[flag]};{value}"
        else:
            values[flag] = value
    return [a for flag, value in values.items() for a in (flag, value) if a is not None]


def bench_argv(
    binary: Path,
    flags: frozenset[str],
    lane: LaneSpec,
    model: Path,
    n_in: int,
    n_out: int,
    reps: int,
    rpc: Sequence[str] = (),
    depth: int = 0,
) -> tuple[list[str], list[str], list[str]]:
    """(prefill argv, decode argv, notes): the lane's model and settings as llama-bench flags.

    The server prefills ``n_in`` tokens after ``depth`` tokens of context and decodes ``n_out``
    after ``depth + n_in``: prefill is ``-p n_in -n 0 -d depth``, decode ``-p 0 -n n_out -d
    depth+n_in`` (two runs, so no test runs that nobody reads). ``rpc``: the lane's RPC
    endpoints (registered before ``-dev`` so RPC device names resolve). llama-bench separates
    a list's items with ``/`` (a comma separates settings to sweep)."""
    settings, notes = _lane_settings(flags, lane, rpc)
    tail = ["-r", str(reps), "-o", "json", *_merged(settings)]
    decode_depth = depth + n_in
    if "-d" not in flags:
        if depth:
            notes.append(f"this llama-bench has no -d: prefill measured at depth 0, not {depth}")
        notes.append(f"this llama-bench has no -d: decode measured at depth 0, not {decode_depth}")
        prefill = [str(binary), "-m", str(model), "-p", str(n_in), "-n", "0", *tail]
        decode = [str(binary), "-m", str(model), "-p", "0", "-n", str(n_out), *tail]
    else:
        prefill = [str(binary), "-m", str(model), "-p", str(n_in), "-n", "0", "-d", str(depth), *tail]
        decode = [str(binary), "-m", str(model), "-p", "0", "-n", str(n_out), "-d", str(decode_depth), *tail]
    if lane.draft is not None:
        notes.append("the plain model's baseline: llama-bench does not draft")
    return prefill, decode, notes


Figure = tuple[float, float, list[float]]  # mean, sd, each repetition's rate (tok/s)


def _figure(row: dict[str, Any]) -> Figure:
    samples = [float(v) for v in row.get("samples_ts") or [] if isinstance(v, int | float)]
    return float(row["avg_ts"]), float(row.get("stddev_ts") or 0.0), samples


def parse_bench_json(
    text: str, prefill_depth: int = 0, decode_depth: int = 0
) -> tuple[Figure | None, Figure | None]:
    """((prefill avg, sd, samples), (decode avg, sd, samples)) tok/s from ``llama-bench -o
    json``: the prompt-only test at ``prefill_depth`` and the generation-only test at
    ``decode_depth`` (llama-bench's ``n_depth``; a row without one ran at depth 0). None where
    absent. ``samples`` are the repetitions' rates (``samples_ts``), [] without them."""
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("llama-bench JSON is not a list of tests")
    prefill = decode = None
    for row in rows:
        if not isinstance(row, dict):
            continue
        n_prompt, n_gen = int(row.get("n_prompt", 0)), int(row.get("n_gen", 0))
        depth = int(row.get("n_depth") or 0)
        if n_prompt > 0 and n_gen == 0 and depth == prefill_depth:
            prefill = _figure(row)
        elif n_gen > 0 and n_prompt == 0 and depth == decode_depth:
            decode = _figure(row)
    return prefill, decode


def _depth(argv: list[str]) -> int:
    return int(argv[argv.index("-d") + 1]) if "-d" in argv else 0


def _run_one(argv: list[str], env: dict[str, str] | None, timeout_s: float) -> tuple[str, str]:
    """(stdout, why it gave nothing: '' when it ran) of one llama-bench run."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"llama-bench did not run: {exc}"
    if out.returncode != 0 or not out.stdout.strip():
        last = last_cause_line(out.stderr)[:200] if out.stderr.strip() else ""
        return out.stdout, f"llama-bench gave no figures (exit {out.returncode}: {last or 'no output'})"
    return out.stdout, ""


def run_baseline(
    argv: list[str],
    decode_argv: list[str],
    notes: list[str],
    env: dict[str, str] | None = None,
    timeout_s: float = 1800.0,
) -> BaselineRecord:
    """Run llama-bench's prefill and decode tests; a failure is a record with a note (the lane's
    other figures stand)."""
    rec = BaselineRecord(argv=argv, decode_argv=decode_argv, note="; ".join(notes))
    rec.n_prompt = int(argv[argv.index("-p") + 1])
    rec.n_gen = int(decode_argv[decode_argv.index("-n") + 1])
    rec.reps = int(argv[argv.index("-r") + 1])
    rec.prefill_depth, rec.decode_depth = _depth(argv), _depth(decode_argv)
    t0 = time.monotonic()
    problems = list(notes)
    for which, run_argv in (("prefill", argv), ("decode", decode_argv)):
        stdout, why = _run_one(run_argv, env, timeout_s)
        try:
            prefill, decode = parse_bench_json(stdout, rec.prefill_depth, rec.decode_depth)
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{which}: {why or f'llama-bench gave no figures ({exc})'}")
            continue
        figure = prefill if which == "prefill" else decode
        if figure is None:
            test = rec.prefill_test if which == "prefill" else rec.decode_test
            problems.append(f"{which}: {why or f'llama-bench printed no {test} test'}")
        elif which == "prefill":
            rec.prefill_tps, rec.prefill_sd, rec.prefill_samples = figure
        else:
            rec.decode_tps, rec.decode_sd, rec.decode_samples = figure
    rec.seconds = time.monotonic() - t0
    rec.note = "; ".join(problems)
    return rec
