"""What the engines that start someone else's server (vLLM, SGLang, Ollama) share: running its
short commands (``run_text``, ``labelled``, ``last_line``), finding its executable
(``find_bin``), the context one sequence gets (``slot_ctx``), refusing lane fields it has no
equivalent for (``refuse_set``), and reading reply fields defensively (``error_text``,
``count``, ``positive``). Engines import these from here, never from a sibling engine.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import needed_ctx
from lanebench.errors import BadInput, NotFound

HELP_TIMEOUT_S = 240.0  # importing vLLM or SGLang (torch, CUDA probing) takes a while
_TAIL_CHARS = 240


def last_line(text: str) -> str:
    """The last non-empty line of a command's output (its error, usually), shortened."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:_TAIL_CHARS] if lines else "no output"


def run_text(argv: Sequence[str], timeout_s: float = HELP_TIMEOUT_S) -> tuple[int, str]:
    """(exit status, stdout + stderr) of a short command such as ``--help``; one-line errors
    (without a lane label: ``labelled`` adds it)."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BadInput(f"`{' '.join(argv)}` did not finish within {timeout_s:g} s") from None
    except OSError as exc:
        raise NotFound(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    return proc.returncode, f"{proc.stdout}\n{proc.stderr}"


T = TypeVar("T")


def labelled(label: str, probe_fn: Callable[[str, int], T], binary: Path) -> T:
    """``probe_fn(binary, mtime)`` (cached per binary, whatever lane asks), its errors prefixed
    with the lane's label."""
    try:
        return probe_fn(str(binary), binary.stat().st_mtime_ns)
    except (BadInput, NotFound) as exc:
        raise type(exc)(f"{label}: {exc}") from None


def find_bin(explicit: Path | None, name: str, label: str, how: str) -> Path:
    """The lane's ``server_bin``, else ``name`` on PATH; refusals name the field.

    Symlinks are kept as given: a virtual environment's ``python`` must stay that environment's."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        source = f"{label}: field 'server_bin'"
        if not path.exists():
            raise BadInput(f"{source}: {path} does not exist")
        if path.is_dir():
            raise BadInput(f"{source}: {path} is a directory, expected the {name} executable")
        if not os.access(path, os.X_OK):
            raise BadInput(f"{source}: {path} is not executable")
        return path
    found = shutil.which(name)
    if found is None:
        raise NotFound(f"{label}: no {name!r} on PATH and the lane sets no 'server_bin'; {how}")
    return Path(found)


def slot_ctx(lane: LaneSpec, job: JobSpec, label: str) -> int:
    """Tokens one sequence may hold: the lane's whole-server ``ctx`` split over its slots, else
    the job's own need (n_in + n_out + slack, rounded up to 256).

    vLLM (``--max-model-len``), SGLang (``--context-length``) and Ollama (``num_ctx``) size one
    sequence, where llama-server's ``-c`` sizes the cache all slots share."""
    if lane.ctx is None:
        return needed_ctx(job, 1)
    per_slot = lane.ctx // lane.slots
    if per_slot < job.n_in + job.n_out:
        raise BadInput(
            f"{label}: field 'ctx' = {lane.ctx} gives {per_slot} tokens per slot, less than the "
            f"job's {job.n_in + job.n_out} (n_in + n_out); use at least "
            f"{needed_ctx(job, lane.slots)} or leave it empty"
        )
    return per_slot


def refuse_set(label: str, engine: str, fields: Mapping[str, tuple[object, str]]) -> None:
    """Refuse lane fields this engine has no equivalent for: ``{field: (value, hint)}``."""
    for name, (value, hint) in fields.items():
        if value not in (None, "", [], {}):
            raise BadInput(f"{label}: field {name!r} = {value!r} has no {engine} equivalent; {hint}")


def error_text(chunk: Mapping[str, Any]) -> str | None:
    """The message of an error chunk (OpenAI ``{"error": {...}}``, vLLM's older flat
    ``{"object": "error", "message": ...}``, Ollama's ``{"error": "..."}``)."""
    err = chunk.get("error")
    if err is None and chunk.get("object") == "error":
        err = chunk.get("message", "error")
    if err is None:
        return None
    if isinstance(err, dict):
        err = err.get("message", err)
    return str(err)[:300]


def positive(value: Any) -> float | None:
    """``value`` as a float when it is a finite number > 0, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) and v > 0 else None


def count(value: Any) -> int | None:
    """``value`` when it is a non-negative integer (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
