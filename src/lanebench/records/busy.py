"""What else ran on the machine while lanebench measured: per window (``LoadRecord``) and per
lane (``BusyRecord``). Plain dataclasses, no I/O; ``lanebench.records`` carries them on its
requests, batches and lanes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lanebench.records.codec import Record


@dataclass(slots=True)
class LoadRecord(Record):
    """What else ran on the machine during one measured window: a repetition's request, an
    N-slot batch, a llama-bench run (``lanebench.busy`` measures it). CPU figures are in cores:
    CPU-seconds per second of the window, summed over the machine's ``cores`` logical CPUs.

    ``other_cores``: /proc/stat's busy time minus the lane's process groups and lanebench's own
    process (with its reaped children): every other process and the kernel's own work;
    ``steal_cores``: time a hypervisor gave this machine's CPUs to someone else; ``other_share``:
    both together as a share of ``cores``; ``lane_cores``/``self_cores``: the lane's and
    lanebench's own use; ``busy``: the load passed ``threshold_cores`` (or another process kept
    the lane's GPU busy), ``why`` says which; ``top``: the heaviest other processes as
    ``[pid, name, cores]``; ``gpu_other_mib``/``gpu_other_sm``: memory (MiB) and SM use (%) of
    other processes on the lane's GPUs (nvidia-smi), None where not measured."""

    lenient = True  # a hand-edited document may hold anything here: read as defaults

    seconds: float = 0.0
    cores: int = 0
    other_cores: float = 0.0
    steal_cores: float = 0.0
    other_share: float = 0.0
    lane_cores: float | None = None
    self_cores: float = 0.0
    threshold_cores: float = 0.0
    busy: bool = False
    why: str = ""
    top: list[list[Any]] = field(default_factory=list)
    gpu_other_mib: float | None = None
    gpu_other_sm: float | None = None

    @property
    def load_cores(self) -> float:
        """Cores taken from the lane by others: other processes and the hypervisor's steal."""
        return self.other_cores + self.steal_cores


@dataclass(slots=True)
class BusyRecord(Record):
    """Which of a lane's figures were measured while the machine was busy, and how busy.

    ``figures``: figure key -> the median load (cores taken by other processes and steal) of
    the busy windows that figure was computed from; a figure is listed only when no quiet window
    was left to compute it from. ``busy_windows``/``windows``: measured windows (single requests,
    N-slot batches) taken while busy / in all; ``extra``: windows beyond the job's repetitions
    (taken to replace busy ones, or for ``--target-ci``); ``excluded``: busy windows left out of
    the figures because quiet ones replaced them;
    ``max_cores``: the heaviest window's load; ``kernel``: the kernel view's load when its
    llama-bench run was busy; ``top``: the heaviest other process seen, ``[pid, name, cores]``;
    ``why``: what was busy (``CPU``, ``GPU``)."""

    lenient = True

    cores: int = 0
    threshold_cores: float = 0.0
    busy_windows: int = 0
    windows: int = 0
    extra: int = 0
    excluded: int = 0
    max_cores: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)
    kernel: float | None = None
    top: list[Any] = field(default_factory=list)
    why: str = ""
