"""Fit before start: a lane whose estimate exceeds free RAM (or free VRAM) is refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lanebench.memory.estimate import LaneEstimate, device_share
from lanebench.memory.gpu import free_vram_mib
from lanebench.memory.proc import mem_available_kib


@dataclass(slots=True, frozen=True)
class Available:
    """Free memory in MiB; ``vram`` None when unknown (no nvidia-smi)."""

    ram: float | None
    vram: float | None = None


def available(meminfo: Path = Path("/proc/meminfo"), gpu: bool = False) -> Available:
    try:
        kib = mem_available_kib(meminfo.read_text())
    except OSError:
        kib = None
    return Available(kib / 1024 if kib is not None else None, free_vram_mib() if gpu else None)


def fit_problem(lane: str, est: LaneEstimate, gpu_layers: int | None, free: Available) -> str | None:
    """One line naming the lane and the numbers when it cannot fit; None when it can (or unknown)."""
    share = device_share(gpu_layers, est.main.n_layer)
    on_gpu = est.total_mib * share
    on_host = est.total_mib - on_gpu
    if free.ram is not None and on_host > free.ram:
        return (
            f"lane {lane!r}: needs about {on_host:,.0f} MiB of RAM (estimate: weights "
            f"{_w(est):,.0f} + KV {_kv(est):,.0f} + compute {_c(est):,.0f}) but only "
            f"{free.ram:,.0f} MiB is available (MemAvailable); lower ctx/slots, quantise the KV "
            "cache, or pass --no-fit-check"
        )
    if on_gpu and free.vram is not None and on_gpu > free.vram:
        return (
            f"lane {lane!r}: needs about {on_gpu:,.0f} MiB of VRAM (estimate, {share:.0%} of the "
            f"lane on the GPU) but only {free.vram:,.0f} MiB is free (nvidia-smi); lower "
            "gpu_layers/ctx/slots, or pass --no-fit-check"
        )
    return None


def _w(e: LaneEstimate) -> float:
    return e.main.weights_mib + (e.draft.weights_mib if e.draft else 0.0)


def _kv(e: LaneEstimate) -> float:
    return e.main.kv_mib + (e.draft.kv_mib if e.draft else 0.0)


def _c(e: LaneEstimate) -> float:
    return e.main.compute_mib + (e.draft.compute_mib if e.draft else 0.0)
