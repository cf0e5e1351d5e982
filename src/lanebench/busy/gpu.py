"""Other processes on a lane's GPUs, from ``nvidia-smi pmon`` (pure parsing and arithmetic).

``nvidia-smi pmon -c 1 -s um`` lists, per GPU and process, the share of the last sample period
in which the process had a kernel running (``sm`` %) and its framebuffer memory (``fb`` MiB);
it answers in well under a second (0.07 s on an H200). Processes time-slice the SMs: two copies
of one busy loop read 44% and 55% (tests/fixtures/gpu_pmon), so what another process takes comes
straight out of the lane's share. Columns differ between drivers (``ccpm`` is new), so they are
found by the header's names. AMD's rocm-smi gives no per-process utilisation: there, and where
nvidia-smi is missing, GPU use by others is not measured (None).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

PMON_ARGS = ["pmon", "-c", "1", "-s", "um"]
GPU_BUSY_SM = 10.0  # % of the sample other processes had kernels on the lane's GPU: busy above


@dataclass(slots=True, frozen=True)
class PmonRow:
    """One process on one GPU: SM use in % of the sample, framebuffer memory in MiB."""

    gpu: int
    pid: int
    sm: float | None
    fb_mib: float | None


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "-": not sampled


def parse_pmon(text: str) -> list[PmonRow]:
    """Rows of ``nvidia-smi pmon`` output; a GPU with no process (``-`` for the pid) has none.
    The first ``#`` line names the columns (``gpu pid type sm mem ... fb ... command``)."""
    cols: list[str] = []
    rows: list[PmonRow] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#":
            if not cols and "pid" in parts:
                cols = parts[1:]
            continue
        if not cols or len(parts) < len(cols) - 1 or not parts[0].isdigit():
            continue
        at = dict(zip(cols, parts, strict=False))
        if not at.get("pid", "").isdigit():
            continue
        fb = _num(at["fb"]) if "fb" in at else None
        rows.append(PmonRow(int(parts[0]), int(at["pid"]), _num(at.get("sm", "-")), fb))
    return rows


def gpu_others(rows: list[PmonRow], lane_pids: Collection[int]) -> tuple[float, float] | None:
    """(MiB, SM %) of other processes on the GPUs the lane's processes are on, summed; None when
    no process of the lane is on a GPU (a CPU lane: nothing to say)."""
    gpus = {r.gpu for r in rows if r.pid in lane_pids}
    if not gpus:
        return None
    others = [r for r in rows if r.gpu in gpus and r.pid not in lane_pids]
    return sum(r.fb_mib or 0.0 for r in others), sum(r.sm or 0.0 for r in others)


def busiest_gpu(rows: list[PmonRow]) -> tuple[float, float] | None:
    """(MiB, SM %) of all processes on the GPU whose processes use the most SM time; None when no
    process is on a GPU (before a run starts, every process there is another's)."""
    per_gpu: dict[int, tuple[float, float]] = {}
    for r in rows:
        mib, sm = per_gpu.get(r.gpu, (0.0, 0.0))
        per_gpu[r.gpu] = (mib + (r.fb_mib or 0.0), sm + (r.sm or 0.0))
    return max(per_gpu.values(), key=lambda v: v[1], default=None)
