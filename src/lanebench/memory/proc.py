"""Resident memory of a process group, sampled from /proc in a background thread (Linux)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

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


def group_pids(pgid: int, proc: Path = PROC) -> list[int]:
    """Processes whose process group is ``pgid``."""
    pids = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # after "(comm)": state ppid pgrp ...
        if len(fields) > 2 and int(fields[2]) == pgid:
            pids.append(int(d.name))
    return pids


class RssSampler:
    """Samples the summed VmRSS of a process group every ``interval_s``; keeps the peak and
    each process's last VmHWM (the kernel's high-water mark)."""

    def __init__(self, pid: int, interval_s: float = 0.2, proc: Path = PROC) -> None:
        try:
            self.pgid = os.getpgid(pid)
        except OSError:
            self.pgid = pid
        self.interval_s, self.proc = interval_s, proc
        self.peak_kib = 0
        self.hwm_kib: dict[int, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        total = 0
        for pid in group_pids(self.pgid, self.proc):
            try:
                st = status_kib((self.proc / str(pid) / "status").read_text())
            except OSError:
                continue
            total += st.get("VmRSS", 0)
            if "VmHWM" in st:
                self.hwm_kib[pid] = st["VmHWM"]
        self.peak_kib = max(self.peak_kib, total)
        self.samples += 1

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # the last word, before the server is stopped

    @property
    def hwm_total_kib(self) -> int:
        return sum(self.hwm_kib.values())
