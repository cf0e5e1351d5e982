"""CPU time of everything outside a lane, from two readings of /proc (pure arithmetic).

A reading (``Snapshot``) is /proc/stat's machine-wide counters plus every process's
``/proc/<pid>/stat`` (``memory.proc.scan_pids``), at a monotonic time. Between two readings:

    others = machine busy time − the lane's process groups − lanebench's own process

in cores (CPU-seconds per second). Ticks are USER_HZ, the unit of both files.

Why the threshold is what it is: llama.cpp's worker threads spin at every barrier, so when other
processes want more CPU than the cores the lane leaves idle, the scheduler takes a core from one
of the lane's threads and all the others wait for it: decode does not slow a little, it
collapses (a 2-core EPYC: 80.6 tok/s alone, 1.6 beside one CPU-heavy process). A window is
busy when others used, on average, more than the idle cores plus a quarter of a core (an idle
machine's daemons use a few hundredths), at most half the machine's cores: past that, others
share the memory bandwidth decode is bound by even when cores are free.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from lanebench.memory.proc import PidStat
from lanebench.records.busy import LoadRecord

TOLERANCE_CORES = 0.25  # what others may use beyond the lane's idle cores before a window is busy
TOP_N = 3  # other processes named per window
TOP_MIN_CORES = 0.05  # a process below this is not named


@dataclass(slots=True, frozen=True)
class CpuTimes:
    """The machine-wide ``cpu`` line of /proc/stat (ticks) and how many CPUs it sums."""

    busy: int  # user + nice + system + irq + softirq (guest time is inside user)
    steal: int  # time a hypervisor ran something else on these CPUs
    cpus: int


def parse_proc_stat(text: str) -> CpuTimes:
    """``cpu  user nice system idle iowait irq softirq steal guest guest_nice`` and the
    ``cpuN`` lines of /proc/stat; ValueError when the ``cpu`` line is missing."""
    total: list[int] | None = None
    cpus = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name == "cpu":
            total = [int(v) for v in rest.split()]
        elif name.startswith("cpu") and name[3:].isdigit():
            cpus += 1
    if total is None or len(total) < 4:
        raise ValueError("/proc/stat has no 'cpu' line")
    total += [0] * (8 - len(total))
    user, nice, system, _idle, _iowait, irq, softirq, steal = total[:8]
    return CpuTimes(user + nice + system + irq + softirq, steal, max(cpus, 1))


@dataclass(slots=True, frozen=True)
class Snapshot:
    """One reading: monotonic seconds, /proc/stat, every process (pid -> ``PidStat``)."""

    t: float
    cpu: CpuTimes
    pids: dict[int, PidStat] = field(default_factory=dict)


def busy_threshold(cores: int, threads: int) -> float:
    """Cores other processes may use on average before a window counts as busy: the cores the
    lane leaves idle (``cores − threads``) plus ``TOLERANCE_CORES``, at most half the machine
    (never below the tolerance). See the module's docstring for why."""
    spare = max(cores - threads, 0)
    return max(TOLERANCE_CORES, min(spare + TOLERANCE_CORES, cores / 2))


def _delta(a: dict[int, PidStat], pid: int, now: PidStat, children: bool = False) -> int:
    """Ticks ``pid`` used since ``a`` (all of them when it is new there, or a reused pid: one
    that started later; a name may change, a kernel worker's does with its work)."""
    was = a.get(pid)
    if was is not None and was.start != now.start:
        was = None
    if children:
        return now.child_ticks - (was.child_ticks if was else 0)
    return now.ticks - (was.ticks if was else 0)


@dataclass(slots=True)
class Split:
    """Ticks of one window: the machine's, the lane's, lanebench's own and its reaped children's."""

    machine: int
    steal: int
    lane: int
    own: int
    children: int
    top: list[tuple[int, str, int]]


def split_ticks(a: Snapshot, b: Snapshot, lane_pgids: Collection[int], self_pid: int) -> Split:
    """Who used the CPU between ``a`` and ``b``; ``top``: other processes, heaviest first."""
    lane = own = children = 0
    others: list[tuple[int, str, int]] = []
    for pid, st in b.pids.items():
        used = _delta(a.pids, pid, st)
        if pid == self_pid:
            own, children = used, _delta(a.pids, pid, st, children=True)
        elif st.pgrp in lane_pgids:
            lane += used + _delta(a.pids, pid, st, children=True)
        elif used > 0:
            others.append((pid, st.comm, used))
    others.sort(key=lambda o: (-o[2], o[0]))
    return Split(b.cpu.busy - a.cpu.busy, b.cpu.steal - a.cpu.steal, lane, own, children, others)


def window_load(
    a: Snapshot,
    b: Snapshot,
    lane_pgids: Collection[int],
    self_pid: int,
    hz: int,
    threshold: float,
    *,
    children_are_lane: bool = False,
) -> LoadRecord:
    """The load of other processes between two readings. ``children_are_lane``: lanebench's
    reaped children are the lane (the kernel view's llama-bench), not lanebench's own use.
    Accounting differences between /proc/stat and the processes' own counters can make the
    difference a tick or two negative: it is clamped at 0."""
    seconds = max(b.t - a.t, 1e-6)
    s = split_ticks(a, b, lane_pgids, self_pid)
    lane_ticks = s.lane + (s.children if children_are_lane else 0)
    self_ticks = s.own + (0 if children_are_lane else s.children)

    def cores(ticks: float) -> float:
        return max(ticks, 0) / hz / seconds

    other = min(cores(s.machine - lane_ticks - self_ticks), b.cpu.cpus)  # ticks are coarse
    steal = cores(s.steal)
    top = [[pid, comm, round(cores(t), 3)] for pid, comm, t in s.top[:TOP_N] if cores(t) >= TOP_MIN_CORES]
    return LoadRecord(
        seconds=round(seconds, 4),
        cores=b.cpu.cpus,
        other_cores=round(other, 3),
        steal_cores=round(steal, 3),
        other_share=round((other + steal) / b.cpu.cpus, 4),
        lane_cores=round(cores(lane_ticks), 3) if lane_pgids or children_are_lane else None,
        self_cores=round(cores(self_ticks), 3),
        threshold_cores=threshold,
        busy=other + steal > threshold,
        why="CPU" if other + steal > threshold else "",
        top=top,
    )


def describe(load: LoadRecord) -> str:
    """``1.93 of 2 cores (97%) used by other processes (top: python3 pid 4242, 0.98)``."""
    share = f"{100 * load.other_share:.0f}%"
    text = f"{load.load_cores:.2f} of {load.cores} cores ({share}) used by other processes"
    if load.steal_cores >= 0.05:
        text += f" ({load.steal_cores:.2f} of them stolen by the hypervisor)"
    if load.top:
        pid, comm, cores = load.top[0]
        text += f" (top: {comm} pid {pid}, {cores:.2f})"
    if load.gpu_other_sm:
        text += f"; other processes kept the lane's GPU {load.gpu_other_sm:.0f}% busy"
    return text
