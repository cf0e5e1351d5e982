"""Resident memory of a lane's process groups (llama-server, and any local RPC servers), sampled
from /proc in a background thread (Linux); the /proc reading that ``lanebench.busy`` shares
(process groups, CPU ticks per process)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

PROC = Path("/proc")


def status_kib(text: str) -> dict[str, int]:
    """``VmRSS``/``VmHWM`` (kB) from a /proc/<pid>/status text."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM") and rest.split():
            out[key] = int(rest.split()[0])
    return out


def mem_available_kib(meminfo: str) -> int | None:
    """``MemAvailable`` (kB) from a /proc/meminfo text; None when absent."""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return None


@dataclass(slots=True, frozen=True)
class PidStat:
    """What lanebench reads of one ``/proc/<pid>/stat``: the command name, the process group,
    CPU time used (``utime + stime``), CPU time of its reaped children (``cutime + cstime``) and
    when it started (``starttime``, after boot: a pid reused by a new process starts later), all
    in clock ticks (``os.sysconf('SC_CLK_TCK')``, the unit of /proc/stat too); ``state``: its
    one-letter state (``Z``: exited, not yet reaped)."""

    comm: str
    pgrp: int
    ticks: int = 0
    child_ticks: int = 0
    start: int = 0
    state: str = ""


def parse_pid_stat(text: str) -> PidStat | None:
    """A ``/proc/<pid>/stat`` line; None when it does not parse. The command name sits in
    parentheses and may hold spaces and ')' itself, so fields are counted after the last ')'.
    A line cut short after the process group keeps 0 ticks."""
    head, sep, rest = text.rpartition(")")
    fields = rest.split()  # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime ...
    if not sep or len(fields) < 3:
        return None
    try:
        pgrp = int(fields[2])
        times = [int(v) for v in fields[11:15]] if len(fields) >= 15 else [0, 0, 0, 0]
        start = int(fields[19]) if len(fields) >= 20 else 0
    except ValueError:
        return None
    comm = head.partition("(")[2]
    return PidStat(comm, pgrp, times[0] + times[1], times[2] + times[3], start, fields[0])


def scan_pids(proc: Path = PROC) -> dict[int, PidStat]:
    """Every process under ``proc`` that could be read (one pass; a process may exit meanwhile)."""
    out: dict[int, PidStat] = {}
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            st = parse_pid_stat((d / "stat").read_text())
        except OSError:
            continue
        if st is not None:
            out[int(d.name)] = st
    return out


def pids_of_groups(scan: dict[int, PidStat], pgids: Sequence[int]) -> dict[int, list[int]]:
    """Processes of each process group in ``pgids``, from one ``scan_pids`` (pure)."""
    out: dict[int, list[int]] = {g: [] for g in pgids}
    for pid, st in scan.items():
        if st.pgrp in out:
            out[st.pgrp].append(pid)
    return out


def groups_pids(pgids: Sequence[int], proc: Path = PROC) -> dict[int, list[int]]:
    """Processes of each process group in ``pgids`` (one pass over ``proc``)."""
    return pids_of_groups(scan_pids(proc), pgids)


def group_pids(pgid: int, proc: Path = PROC) -> list[int]:
    """Processes whose process group is ``pgid``."""
    return groups_pids([pgid], proc)[pgid]


def live_group_pids(pgid: int, proc: Path = PROC) -> list[int]:
    """Processes of group ``pgid`` that still run (exited ones awaiting their reaper left out);
    [] without a readable ``proc`` (not Linux)."""
    try:
        scan = scan_pids(proc)
    except OSError:
        return []
    return [pid for pid in pids_of_groups(scan, [pgid])[pgid] if scan[pid].state != "Z"]


def lane_pgids(leaders: Sequence[int]) -> list[int]:
    """The process group of each leader pid (the pid itself when it is gone), without repeats."""
    out: list[int] = []
    for pid in leaders:
        try:
            pgid = os.getpgid(pid)
        except OSError:
            pgid = pid
        if pgid not in out:
            out.append(pgid)
    return out


class PeriodicSampler:
    """Calls ``sample`` every ``interval_s`` in a daemon thread while entered, and once more on
    exit (the last word, before the server is stopped). ``active`` False: no thread at all."""

    def __init__(self, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    @property
    def active(self) -> bool:
        return True

    def sample(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Self:
        if self.active:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        self._stop.set()
        self._thread.join()
        self.sample()


class RssSampler(PeriodicSampler):
    """Samples the summed VmRSS of every process group led by ``leaders`` (llama-server first,
    then its local RPC servers) every ``interval_s``; keeps the peak of the sum over all groups
    and each process's last VmHWM (the kernel's high-water mark). A single pid is one group."""

    def __init__(self, leaders: int | Sequence[int], interval_s: float = 0.2, proc: Path = PROC) -> None:
        super().__init__(interval_s, "rss-sampler")
        self.pgids = lane_pgids([leaders] if isinstance(leaders, int) else leaders)
        self.proc = proc
        self.peak_kib = 0
        self.hwm_kib: dict[int, int] = {}
        self.samples = 0

    def sample(self) -> None:
        total = 0
        for pids in groups_pids(self.pgids, self.proc).values():
            for pid in pids:
                try:
                    st = status_kib((self.proc / str(pid) / "status").read_text())
                except OSError:
                    continue
                total += st.get("VmRSS", 0)
                if "VmHWM" in st:
                    self.hwm_kib[pid] = st["VmHWM"]
        self.peak_kib = max(self.peak_kib, total)
        self.samples += 1

    @property
    def hwm_total_kib(self) -> int:
        return sum(self.hwm_kib.values())
