"""GPU memory of a lane's processes, sampled in a background thread while its job runs.

Every ``interval_s`` the probe (``nvidia-smi``/``rocm-smi``) lists memory per (GPU, pid); the
lane's processes are every member of its process groups (llama-server and local RPC servers).
Kept: the peak over samples of the lane's total, each GPU's own peak for the lane, and each
GPU's peak whole-device use (all processes). Without a probe there is no thread at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lanebench.memory.gpu import ALL_GPUS, GpuInfo, GpuProbe, GpuSnapshot, GpuToolError
from lanebench.memory.proc import PROC, PeriodicSampler, groups_pids


class VramSampler(PeriodicSampler):
    """Peaks in MiB: ``peak_mib`` (sum over GPUs), ``peak_by_gpu`` (GPU index -> MiB; the tool's
    ``ALL_GPUS`` figures are in the total only), ``device_peak`` (whole GPU, every process)."""

    def __init__(
        self,
        pgids: Sequence[int],
        probe: GpuProbe | None,
        interval_s: float = 1.0,
        proc: Path = PROC,
        absent: str = "",
    ) -> None:
        """``absent``: the note to give when there is no probe (``find_probe``'s)."""
        super().__init__(interval_s, "vram-sampler")
        self.pgids, self.probe, self.proc = list(pgids), probe, proc
        self.absent = absent
        self.peak_mib: float | None = None
        self.peak_by_gpu: dict[int, float] = {}
        self.device_peak: dict[int, float] = {}
        self.gpus: dict[int, GpuInfo] = {}
        self.samples = 0
        self.failures = 0
        self.others_seen = False  # the tool listed processes, none of them the lane's
        self.error = ""

    @property
    def active(self) -> bool:
        return self.probe is not None

    def sample(self) -> None:
        if self.probe is None:
            return
        try:
            snap = self.probe.snapshot()
        except GpuToolError as exc:
            self.failures += 1
            self.error = self.error or str(exc)
            return
        pids = {p for group in groups_pids(self.pgids, self.proc).values() for p in group}
        self.add(snap, pids)

    def add(self, snap: GpuSnapshot, pids: set[int]) -> None:
        """Fold one snapshot in, counting only ``pids``."""
        per_gpu: dict[int, float] = {}
        for (gpu, pid), mib in snap.used.items():
            if pid in pids:
                per_gpu[gpu] = per_gpu.get(gpu, 0.0) + mib
            else:
                self.others_seen = True
        total = sum(per_gpu.values())
        self.peak_mib = total if self.peak_mib is None else max(self.peak_mib, total)
        for gpu, mib in per_gpu.items():
            if gpu != ALL_GPUS:
                self.peak_by_gpu[gpu] = max(self.peak_by_gpu.get(gpu, 0.0), mib)
        for g in snap.gpus:
            self.gpus[g.index] = g
            if g.used_mib is not None:
                self.device_peak[g.index] = max(self.device_peak.get(g.index, 0.0), g.used_mib)
        self.samples += 1

    def notes(self) -> list[str]:
        """What the reader should know about these figures (the tool, its failures)."""
        if self.probe is None:
            return [self.absent] if self.absent else []
        out = []
        if self.error:
            out.append(f"{self.error} ({self.failures} of {self.samples + self.failures} samples)")
        if self.samples and not self.peak_mib and self.others_seen:
            out.append(
                f"{self.probe.name} lists no process of the lane (a CPU lane, or another PID namespace)"
            )
        return out
