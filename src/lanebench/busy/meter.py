"""Measuring a window: read /proc (and ask ``nvidia-smi pmon``) before and after it.

``LoadMeter.start()`` before a repetition, ``stop(start)`` after: a ``LoadRecord`` of what every
process outside the lane's process groups and lanebench used meanwhile. A reading walks /proc
once (a few ms; outside the timed request, and lanebench's own time is subtracted). Without
/proc/stat (not Linux) the meter is off and gives None.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from lanebench.busy.cpu import Snapshot, busy_threshold, describe, parse_proc_stat, window_load
from lanebench.busy.gpu import GPU_BUSY_SM, PMON_ARGS, busiest_gpu, gpu_others, parse_pmon
from lanebench.host.hostinfo import physical_cores
from lanebench.memory.gpu import GpuToolError, run_tool
from lanebench.memory.proc import PROC, lane_pgids, pids_of_groups, scan_pids
from lanebench.records.busy import LoadRecord


def default_threads(proc: Path = PROC) -> int:
    """The threads llama.cpp uses without ``-t``: its ``cpu_get_num_math`` counts physical
    cores (common/common.cpp); the logical CPUs when /proc/cpuinfo does not say."""
    try:
        cores = physical_cores((proc / "cpuinfo").read_text())
    except OSError:
        cores = None
    return cores or os.cpu_count() or 1


class LoadMeter:
    """Windows of one lane: ``pgids`` are its process groups (none for a machine-wide reading);
    ``threads`` the CPU threads it asks for (llama.cpp's default when None); ``children_are_lane``:
    lanebench's reaped children are the lane (llama-bench, run as a child), not lanebench."""

    def __init__(
        self,
        pgids: Sequence[int] = (),
        threads: int | None = None,
        *,
        proc: Path = PROC,
        self_pid: int | None = None,
        children_are_lane: bool = False,
        smi: str | None = None,
    ) -> None:
        self.pgids, self.proc = list(pgids), proc
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.children_are_lane = children_are_lane
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.smi = smi
        self.gpu_lane: bool | None = None  # unknown until the first window; False: a CPU lane
        try:
            cores = parse_proc_stat((proc / "stat").read_text()).cpus
        except (OSError, ValueError):
            cores = 0
        self.active = cores > 0
        self.threshold = busy_threshold(cores, threads or default_threads(proc)) if cores else 0.0

    @classmethod
    def for_lane(cls, leaders: Sequence[int], threads: int | None) -> LoadMeter:
        """A meter of the process groups led by ``leaders`` (llama-server, local RPC servers),
        asking nvidia-smi about the GPU when it is on PATH."""
        return cls(lane_pgids(leaders), threads, smi=shutil.which("nvidia-smi"))

    def snapshot(self) -> Snapshot | None:
        try:
            text = (self.proc / "stat").read_text()
            return Snapshot(time.monotonic(), parse_proc_stat(text), scan_pids(self.proc))
        except (OSError, ValueError):
            return None

    def start(self) -> Snapshot | None:
        return self.snapshot() if self.active else None

    def stop(self, start: Snapshot | None) -> LoadRecord | None:
        """The window since ``start``; None when the meter is off or a reading failed."""
        end = self.snapshot() if start is not None else None
        if start is None or end is None:
            return None
        load = window_load(
            start, end, self.pgids, self.self_pid, self.hz, self.threshold,
            children_are_lane=self.children_are_lane,
        )  # fmt: skip
        self._gpu(load, end)
        return load

    def _gpu(self, load: LoadRecord, end: Snapshot) -> None:
        """Fold in other processes' use of the lane's GPUs (the last pmon sample, ~1 s)."""
        if self.smi is None or self.gpu_lane is False or not self.pgids:
            return
        try:
            rows = parse_pmon(run_tool([self.smi, *PMON_ARGS]))
        except GpuToolError:
            return
        lane = {pid for pids in pids_of_groups(end.pids, self.pgids).values() for pid in pids}
        found = gpu_others(rows, lane)
        self.gpu_lane = found is not None
        _fold_gpu(load, found)


def machine_load(
    seconds: float = 1.0, threads: int | None = None, proc: Path = PROC, smi: str | None = "auto"
) -> LoadRecord | None:
    """What the machine's processes other than lanebench use now, over ``seconds`` (for
    ``doctor`` and the start of a run), and the busiest GPU's use by its processes (nvidia-smi,
    ``smi='auto'``: on PATH); None without /proc/stat."""
    meter = LoadMeter((), threads, proc=proc)
    start = meter.start()
    if start is None:
        return None
    time.sleep(seconds)
    load = meter.stop(start)
    exe = shutil.which("nvidia-smi") if smi == "auto" else smi
    if load is not None and exe is not None:
        try:
            rows = parse_pmon(run_tool([exe, *PMON_ARGS]))
        except GpuToolError:
            rows = []
        _fold_gpu(load, busiest_gpu(rows))
    return load


def busy_warning(threads: int, again: int, seconds: float = 1.0) -> str | None:
    """One line when other processes keep the machine busy now (watched for ``seconds``), for
    lanes of ``threads`` threads that lanebench starts here; ``again``: the busy repetitions each
    lane may re-measure. None when quiet."""
    load = machine_load(seconds, threads)
    if load is None or not load.busy:
        return None
    return (
        f"warning: the machine is busy: {describe(load)} over {load.seconds:.1f} s; llama.cpp's threads "
        f"spin, so figures measured now collapse: busy repetitions are re-measured (at most {again} "
        "extra per lane) and figures that had no quiet one are marked [busy]"
    )


def _fold_gpu(load: LoadRecord, found: tuple[float, float] | None) -> None:
    """Other processes' (MiB, SM %) on a GPU into ``load``; busy above ``GPU_BUSY_SM``."""
    if found is None:
        return
    load.gpu_other_mib, load.gpu_other_sm = found
    if found[1] > GPU_BUSY_SM:
        load.busy = True
        load.why = "+".join(w for w in (load.why, "GPU") if w)
