"""Memory per device (pure): the server log's buffers of each device, the split of the main
model's weights, and each GPU's peak for the lane from nvidia-smi.

One ``DeviceMemory`` entry per device the log names, in the order it
first names them: ``CUDA0``, ``Vulkan0``, ``ROCm0``, ``RPC0[127.0.0.1:50052]`` (an RPC server's
device: its buffers live in that server's process, on whatever backend it runs). Every host
buffer (``CPU``, ``CPU_Mapped``, ``CPU_REPACK``, ``CUDA_Host``...) is folded into one ``host``
entry, last: they are all the server's own RAM, and their names are buffer kinds, not devices.

- ``weights``/``kv``/``compute``: the main model's buffers on the device (compute includes the
  output buffer), MiB, None where it has none; ``draft``: every buffer of the draft model or
  head on the device;
- ``weights_share``: this device's share of the main model's weights outside host memory
  (0..1; None for ``host``): the split the device got;
- ``peak_vram``/``vram_total``/``gpu``: the GPU's peak for the lane's processes over the job,
  its size and its label (``GPU0 (NVIDIA H200)``). A GPU is matched to the log's device by PCI
  bus id (the log's ``using device CUDA0 (...) (0000:18:00.0)``), which holds whatever
  ``CUDA_VISIBLE_DEVICES`` says; without bus ids, ``CUDA<i>`` is nvidia-smi's GPU ``i`` only
  when the server saw every GPU in the same order (``CUDA_VISIBLE_DEVICES`` unset, and
  ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or all GPUs alike). A GPU matched to no log device (an RPC
  server's GPU, as the log names it ``RPC0[...]``) gets an entry of its own named by its label.
"""

from __future__ import annotations

from collections.abc import Mapping

from lanebench.memory.gpu import GpuInfo, norm_bus_id
from lanebench.memory.logparse import ModelBuffers, is_host_device
from lanebench.records.memory import HOST, DeviceMemory


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _part(part: dict[str, float], devices: set[str]) -> float | None:
    vals = [v for d, v in part.items() if d in devices]
    return _r(sum(vals)) if vals else None


def device_breakdown(models: list[ModelBuffers]) -> list[DeviceMemory]:
    """One entry per device of the log (main model first in ``models``), then ``host``."""
    if not models:
        return []
    main, rest = models[0], models[1:]
    order: list[str] = []
    for m in models:
        for part in (m.weights, m.kv, m.compute):
            order += [d for d in part if d not in order]
    devices = [d for d in order if not is_host_device(d)]
    groups = [(d, {d}) for d in devices]
    if host := {d for d in order if is_host_device(d)}:
        groups.append((HOST, host))
    off_host = sum(v for d, v in main.weights.items() if not is_host_device(d))
    out = []
    for name, members in groups:
        weights, kv, compute = (_part(p, members) for p in (main.weights, main.kv, main.compute))
        e = DeviceMemory(name, weights, kv, compute)
        drafts = [v for m in rest for p in (m.weights, m.kv, m.compute) for d, v in p.items() if d in members]
        e.draft = _r(sum(drafts)) if drafts else None
        if name != HOST and off_host > 0:
            e.weights_share = round((e.weights or 0.0) / off_host, 4)
        out.append(e)
    return out


def _by_index(device_ids: Mapping[str, str], gpus: Mapping[int, GpuInfo], env: Mapping[str, str]) -> bool:
    if device_ids or "CUDA_VISIBLE_DEVICES" in env:
        return False
    return env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID" or len({g.name for g in gpus.values()}) <= 1


def add_gpu_peaks(
    devices: list[DeviceMemory],
    peak_by_gpu: Mapping[int, float],
    gpus: Mapping[int, GpuInfo],
    device_ids: Mapping[str, str],
    env: Mapping[str, str],
) -> None:
    """Put each GPU's peak for the lane (MiB, by nvidia-smi index) on the log's device it is,
    or on an entry of its own; see the module's note for the matching."""
    by_bus = {norm_bus_id(bus): name for name, bus in device_ids.items()}
    by_index = _by_index(device_ids, gpus, env)
    entries = {e.device: e for e in devices}
    for index in sorted(peak_by_gpu):
        gpu = gpus.get(index, GpuInfo(index, ""))
        name = by_bus.get(gpu.bus_id) if gpu.bus_id else None
        if name is None and by_index:
            name = f"CUDA{index}"
        entry = entries.get(name or "")
        if entry is None:
            entry = DeviceMemory(gpu.label)
            devices.append(entry)
        entry.peak_vram = round(peak_by_gpu[index], 2)
        entry.vram_total = _r(gpu.total_mib)
        entry.gpu = gpu.label
