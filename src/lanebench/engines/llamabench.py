"""The kernel view of a lane: the build's own ``llama-bench`` with the lane's settings.

llama-bench runs the model's kernels with no server, no HTTP and no sampler over the vocabulary:
the fastest the build can prefill ``n_in`` tokens and decode ``n_out``. Beside the engine's
``timings`` and the client's clock it is the first of the three views of a lane's speed. Its
flags are read from its own ``--help`` (as the server's are); a setting it has no flag for is
left at its default and named in the record's note. Speculative lanes get the plain model's
baseline (llama-bench does not draft), and say so.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lanebench.engines.exitcause import last_cause_line
from lanebench.lanes import LaneSpec

BENCH_NAME = "llama-bench"
_FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


@dataclass(slots=True)
class BaselineRecord:
    """llama-bench's figures for a lane (tokens per second, mean ± sd over repetitions)."""

    argv: list[str] = field(default_factory=list)
    prefill_tps: float | None = None
    prefill_sd: float | None = None
    decode_tps: float | None = None
    decode_sd: float | None = None
    prefill_samples: list[float] = field(default_factory=list)  # each repetition's rate (samples_ts)
    decode_samples: list[float] = field(default_factory=list)
    n_prompt: int = 0
    n_gen: int = 0
    reps: int = 0
    seconds: float | None = None
    note: str = ""
    load: dict[str, Any] | None = None  # what else ran meanwhile: lanebench.busy.records.LoadRecord

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaselineRecord:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


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


def bench_argv(
    binary: Path,
    flags: frozenset[str],
    lane: LaneSpec,
    model: Path,
    n_in: int,
    n_out: int,
    reps: int,
    rpc: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """(argv, notes): the lane's model and settings as llama-bench flags, JSON output.

    ``rpc``: the lane's RPC endpoints (registered before ``-dev`` so RPC device names resolve).
    llama-bench separates a list's items with ``/`` (a comma separates settings to sweep)."""
    argv = [str(binary), "-m", str(model), "-p", str(n_in), "-n", str(n_out), "-r", str(reps), "-o", "json"]
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
            argv += [flag, value]
        elif f"lane field {name!r}" not in " ".join(notes):
            notes.append(f"this llama-bench has no {flag}: lane field {name!r} left at its default")
    if lane.draft is not None:
        notes.append("the plain model's baseline: llama-bench does not draft")
    return argv, notes


Figure = tuple[float, float, list[float]]  # mean, sd, each repetition's rate (tok/s)


def parse_bench_json(text: str) -> tuple[Figure | None, Figure | None]:
    """((prefill avg, sd, samples), (decode avg, sd, samples)) tok/s from ``llama-bench -o json``;
    None where absent. ``samples`` are the repetitions' rates (``samples_ts``), [] without them."""
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("llama-bench JSON is not a list of tests")
    prefill = decode = None
    for row in rows:
        if not isinstance(row, dict):
            continue
        samples = [float(v) for v in row.get("samples_ts") or [] if isinstance(v, int | float)]
        figure = (float(row["avg_ts"]), float(row.get("stddev_ts") or 0.0), samples)
        if int(row.get("n_prompt", 0)) > 0 and int(row.get("n_gen", 0)) == 0:
            prefill = figure
        elif int(row.get("n_gen", 0)) > 0 and int(row.get("n_prompt", 0)) == 0:
            decode = figure
    return prefill, decode


def run_baseline(
    argv: list[str], notes: list[str], env: dict[str, str] | None = None, timeout_s: float = 1800.0
) -> BaselineRecord:
    """Run llama-bench; a failure is a record with a note (the lane's other figures stand)."""
    rec = BaselineRecord(argv=argv, note="; ".join(notes))
    rec.n_prompt, rec.n_gen, rec.reps = (
        int(argv[argv.index("-p") + 1]),
        int(argv[argv.index("-n") + 1]),
        int(argv[argv.index("-r") + 1]),
    )
    t0 = time.monotonic()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        rec.note = "; ".join([*notes, f"llama-bench did not run: {exc}"])
        return rec
    rec.seconds = time.monotonic() - t0
    try:
        prefill, decode = parse_bench_json(out.stdout)
    except (ValueError, KeyError, TypeError) as exc:
        last = last_cause_line(out.stderr)[:200] if out.stderr.strip() else ""
        rec.note = "; ".join([*notes, f"llama-bench gave no figures (exit {out.returncode}: {last or exc})"])
        return rec
    if prefill:
        rec.prefill_tps, rec.prefill_sd, rec.prefill_samples = prefill
    if decode:
        rec.decode_tps, rec.decode_sd, rec.decode_samples = decode
    return rec
