"""Running the build's own ``llama-perplexity``: its dialect, its argv, and a base file that is
complete or absent.

The argv are pure functions of a ``ToolLane`` (model, KV types, flash attention, threads, GPU
layers, the flags ``quality.reproduce`` passes on) and the slice; ``BaseFile`` owns the large
``--kl-divergence-base`` file: written under a temporary name inside a private folder, checked
against its exact expected size (the tool does not notice a full disk and exits 0), renamed,
and removed with the folder whatever happens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType

from lanebench.engines.llamacpp.argv import UNQUANTISED_KV
from lanebench.engines.llamacpp.dialect import Dialect, parse_dialect
from lanebench.errors import LanebenchError
from lanebench.quality.slicing import Slice

TOOL = "llama-perplexity"
REQUIRED = ("--kl-divergence-base", "--kl-divergence", "--chunks", "-f")


class QualityError(LanebenchError):
    """A quality measurement could not be made; one line saying why."""


def find_perplexity(server_bin: Path) -> Path | None:
    """``llama-perplexity`` beside ``server_bin`` (resolving links), or None."""
    for folder in dict.fromkeys((server_bin.parent, server_bin.resolve().parent)):
        candidate = folder / TOOL
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@lru_cache(maxsize=16)
def _probe(binary: Path, mtime_ns: int) -> Dialect:
    try:
        proc = subprocess.run(
            [str(binary), "--help"], capture_output=True, text=True, timeout=30, errors="replace"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QualityError(f"{binary}: cannot run '--help' ({exc})") from None
    return parse_dialect("", proc.stdout + proc.stderr)


def probe_tool(binary: Path) -> Dialect:
    """The flags this ``llama-perplexity`` takes, read from its ``--help``; ``QualityError`` when
    it lacks what a KL-divergence run needs."""
    dialect = _probe(binary, binary.stat().st_mtime_ns)
    missing = [f for f in REQUIRED if f not in dialect.flags]
    if missing:
        raise QualityError(f"{binary}: its --help lists no {', '.join(missing)}; it cannot compare lanes")
    return dialect


@dataclass(frozen=True, slots=True)
class ToolLane:
    """A lane as ``llama-perplexity`` reproduces it: the model, KV types, flash attention,
    threads and GPU layers, then ``extra`` (placement flags and the lane's ``extra_args`` that
    this tool takes, in order) under ``env`` (the lane's environment less what only the server
    reads); ``quality.reproduce`` decides what goes in."""

    model: Path
    kv: str = "f16"
    flash_attn: str = "auto"
    threads: int | None = None
    gpu_layers: int | None = None
    extra: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    def key(self) -> str:
        """Lanes with the same key share one measurement (threads do not change the output)."""
        extra = " ".join(self.extra)
        env = " ".join(f"{k}={v}" for k, v in self.env)
        return f"{self.model}|kv={self.kv}|fa={self.flash_attn}|ngl={self.gpu_layers}|args={extra}|env={env}"


def lane_args(lane: ToolLane, dialect: Dialect) -> list[str]:
    """The model and the lane's output-changing flags, spelled as this build spells them."""
    args = ["-m", str(lane.model)]
    if lane.threads is not None:
        args += ["-t", str(lane.threads)]
    if lane.gpu_layers is not None:
        args += ["-ngl", str(lane.gpu_layers)]
    if lane.kv != "f16":
        if not {"-ctk", "-ctv"} <= dialect.flags:
            raise QualityError(f"{TOOL} of this build takes no -ctk/-ctv: cannot measure KV type {lane.kv}")
        args += ["-ctk", lane.kv, "-ctv", lane.kv]
    if "-fa" in dialect.flags:
        if dialect.flash_attn_values:
            args += ["-fa", lane.flash_attn]
        elif lane.flash_attn == "on" or (lane.flash_attn == "auto" and lane.kv not in UNQUANTISED_KV):
            args += ["-fa"]  # older builds: a bare switch, as engines.argv gives the server
    return args + list(lane.extra)


def base_argv(
    binary: Path, lane: ToolLane, dialect: Dialect, corpus: Path, sl: Slice, out: Path
) -> list[str]:
    """The reference run: score the slice, save every distribution to ``out``."""
    return [
        str(binary),
        *lane_args(lane, dialect),
        "-f", str(corpus),
        "-c", str(sl.ctx),
        "-b", str(sl.batch),
        "--chunks", str(sl.chunks),
        "--kl-divergence-base", str(out),
    ]  # fmt: skip


def kld_argv(binary: Path, lane: ToolLane, dialect: Dialect, sl: Slice, base: Path) -> list[str]:
    """A lane's run against the base file (which also holds the slice's tokens)."""
    return [
        str(binary),
        *lane_args(lane, dialect),
        "-c", str(sl.ctx),
        "-b", str(sl.batch),
        "--chunks", str(sl.chunks),
        "--kl-divergence-base", str(base),
        "--kl-divergence",
    ]  # fmt: skip


@dataclass(slots=True)
class ToolRun:
    stdout: str
    stderr: str
    returncode: int
    seconds: float


def run_tool(argv: list[str], env: Sequence[tuple[str, str]] = (), timeout_s: float = 3600.0) -> ToolRun:
    """Run it to the end; ``QualityError`` when it cannot start, times out or dies by a signal."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            env={**os.environ, **dict(env)},
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise QualityError(f"{argv[0]}: cannot run it ({exc.strerror or exc})") from None
    except subprocess.TimeoutExpired:
        raise QualityError(f"{TOOL} did not finish in {timeout_s:g} s") from None
    if proc.returncode < 0:
        raise QualityError(f"{TOOL} was killed by signal {-proc.returncode}")
    return ToolRun(proc.stdout, proc.stderr, proc.returncode, time.perf_counter() - t0)


class BaseFile:
    """The reference's ``--kl-divergence-base`` file, in a private folder under ``work_dir``.

    ``partial`` is where the tool writes; ``commit(expected)`` checks the size and renames it to
    ``path``; leaving the context removes the folder, finished or not."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.folder: Path | None = None

    def __enter__(self) -> BaseFile:
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="kld-", dir=self.work_dir))
        except OSError as exc:
            raise QualityError(f"cannot make a folder for the base file in {self.work_dir} ({exc})") from None
        return self

    @property
    def partial(self) -> Path:
        assert self.folder is not None
        return self.folder / "base.kld.partial"

    @property
    def path(self) -> Path:
        assert self.folder is not None
        return self.folder / "base.kld"

    def commit(self, expected: int) -> Path:
        """Keep the written file if it is whole; ``QualityError`` (file removed) if it is short."""
        try:
            size = self.partial.stat().st_size
        except FileNotFoundError:
            raise QualityError(f"{TOOL} wrote no base file in {self.folder}") from None
        if size != expected:
            self.partial.unlink(missing_ok=True)
            free = shutil.disk_usage(self.work_dir).free
            raise QualityError(
                f"the base file in {self.work_dir} is {size:,} of {expected:,} bytes: the disk filled "
                f"up while {TOOL} wrote it ({free:,} bytes free now); it was removed; free some space "
                "or score fewer tokens"
            )
        os.replace(self.partial, self.path)
        return self.path

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
