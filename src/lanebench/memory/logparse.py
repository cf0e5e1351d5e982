"""llama-server's own memory breakdown, parsed from its load lines (pure; no I/O).

The build logs one section per model it loads: ``load_tensors: <dev> model buffer size``,
then ``llama_kv_cache: <dev> KV buffer size`` (older builds: ``KV self size``), ``<dev> output
buffer size`` and ``sched_reserve: <dev> compute buffer size``. The first section is the main
model; later ones are the draft model or MTP head. Build b11434 prints these at verbosity 4
(``-lv 4``); older builds at their default.

Device names are the ggml buffer (type) names: ``CUDA0``, ``ROCm0``, ``Vulkan0``, ``Metal``, and
for the RPC backend ``RPC<d>[<host>:<port>]`` (b11434 ``ggml-rpc.cpp``: ``"RPC" + device +
"[" + endpoint + "]"``, ``<d>`` the device's index on that server), e.g. ``RPC0[127.0.0.1:50052]``;
host buffers are ``CPU``, ``CPU_Mapped``, ``CPU_REPACK``, ``<backend>_Host``. Each device's PCI
bus id comes from ``llama_model_load_from_file_impl: using device CUDA0 (NVIDIA H200)
(0000:18:00.0) - 140000 MiB free``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MODEL = re.compile(r"load_tensors:\s+(\S+) model buffer size\s*=\s*([\d.]+) MiB")
_KV = re.compile(r"(\S+) KV buffer size\s*=\s*([\d.]+) MiB")
_KV_SELF = re.compile(r"KV self size\s*=\s*([\d.]+) MiB")
_OUTPUT = re.compile(r"(\S+)\s+output buffer size\s*=\s*([\d.]+) MiB")
_COMPUTE = re.compile(r"(\S+) compute buffer size\s*=\s*([\d.]+) MiB")
_USING = re.compile(r"using device (\S+) \(.*\) \(([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f.]+)\) - ")


def is_host_device(device: str) -> bool:
    """Buffers in host memory: ``CPU``, ``CPU_Mapped``, ``CPU_REPACK``, ``CUDA_Host``..."""
    return device.upper().startswith("CPU") or device.endswith("_Host")


@dataclass(slots=True)
class ModelBuffers:
    """One loaded model's buffers in MiB, per device."""

    weights: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)
    compute: dict[str, float] = field(default_factory=dict)  # compute and output buffers

    def total(self) -> float:
        return sum(self.weights.values()) + sum(self.kv.values()) + sum(self.compute.values())

    def host(self) -> float:
        parts = (self.weights, self.kv, self.compute)
        return sum(v for p in parts for d, v in p.items() if is_host_device(d))


def _add(part: dict[str, float], device: str, mib: str) -> None:
    part[device] = part.get(device, 0.0) + float(mib)


def parse_buffers(text: str) -> list[ModelBuffers]:
    """Every model section of a llama-server log, main model first; [] if it logs none."""
    models: list[ModelBuffers] = []
    cur: ModelBuffers | None = None
    for line in text.splitlines():
        if m := _MODEL.search(line):
            if cur is None or cur.kv or cur.compute:
                cur = ModelBuffers()
                models.append(cur)
            _add(cur.weights, m[1], m[2])
        elif cur is None:
            continue
        elif m := _KV.search(line):
            _add(cur.kv, m[1], m[2])
        elif (m := _KV_SELF.search(line)) and not cur.kv:
            _add(cur.kv, "CPU", m[1])
        elif (m := _OUTPUT.search(line)) or (m := _COMPUTE.search(line)):
            _add(cur.compute, m[1], m[2])
    return models


def parse_device_ids(text: str) -> dict[str, str]:
    """Device name -> PCI bus id as the log prints it (``CUDA0`` -> ``0000:18:00.0``); devices
    without one (RPC, CPU, virtual ``-v<i>`` ids) are left out."""
    return {m[1]: m[2] for line in text.splitlines() if (m := _USING.search(line))}


_KV_SIZE = re.compile(r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers")
_ISWA = re.compile(r"llama_kv_cache_iswa: creating\s+(non-SWA|SWA) KV cache")


@dataclass(frozen=True, slots=True)
class KvCache:
    """One KV cache the server allocated (``llama_kv_cache: size = X MiB (N cells, L layers,
    ...)``): its size, its cells, and whether it is the sliding-window cache of an iSWA model."""

    mib: float
    cells: int
    layers: int
    swa: bool = False


def kv_caches(text: str) -> list[KvCache]:
    """The main model's KV caches, in log order: one, or for an iSWA model its full-attention
    and its sliding-window cache (a draft's caches come after the main model's and are left out)."""
    out: list[KvCache] = []
    swa: bool | None = None  # None: no iSWA line yet
    for line in text.splitlines():
        if m := _ISWA.search(line):
            swa = m[1] == "SWA"
        elif m := _KV_SIZE.search(line):
            out.append(KvCache(float(m[1]), int(m[2]), int(m[3]), bool(swa)))
            if swa is None or swa:  # a plain model's one cache, or an iSWA model's second
                break
    return out


def kv_in_use_mib(caches: list[KvCache], depth: int, streams: int, n_in: int, n_out: int) -> float:
    """KV held by ``streams`` conversations of ``depth + n_in + n_out`` tokens: each full-attention
    cache's size per cell times the cells in use (at most all of them); a sliding-window cache
    keeps a fixed window per stream, counted whole."""
    used = 0.0
    for c in caches:
        if c.swa:
            used += c.mib
        elif c.cells:
            used += c.mib * min(1.0, streams * (depth + n_in + n_out) / c.cells)
    return used
