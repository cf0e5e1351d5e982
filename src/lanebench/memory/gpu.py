"""GPU memory per device and per process from the vendor's tool: ``nvidia-smi`` (per GPU and
pid), else ``rocm-smi`` (per pid, summed over the GPUs it uses). Parsers are pure; a probe runs
its tool once per call. An absent or failing tool is a note, never a failure.

Vulkan has no per-process memory query (neither the API nor a vendor-neutral tool gives one):
a Vulkan lane's VRAM is the server log's own buffers only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol

NVIDIA_APPS = ["--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"]
# pci.bus_id (not in the brief's minimum) maps a GPU onto the log's CUDA<i> whatever
# CUDA_VISIBLE_DEVICES or CUDA_DEVICE_ORDER the server ran with
NVIDIA_GPUS = [
    "--query-gpu=index,uuid,name,memory.used,memory.total,pci.bus_id",
    "--format=csv,noheader,nounits",
]
ROCM_ARGS = ["--showmeminfo", "vram", "--showpids", "--json"]
ALL_GPUS = -1  # the GPU index of a figure the tool gives per process only (rocm-smi)
TIMEOUT_S = 10.0
MIB = 1024 * 1024


class GpuToolError(Exception):
    """The tool ran but gave nothing usable (the message is the note)."""


@dataclass(slots=True, frozen=True)
class GpuInfo:
    """One GPU as the tool lists it; MiB."""

    index: int
    name: str
    used_mib: float | None = None
    total_mib: float | None = None
    uuid: str = ""
    bus_id: str = ""  # normalised by ``norm_bus_id``; '' when unknown

    @property
    def label(self) -> str:
        return f"GPU{self.index} ({self.name})" if self.name else f"GPU{self.index}"


@dataclass(slots=True)
class GpuSnapshot:
    """One query: the GPUs, and MiB per (GPU index, pid); index ``ALL_GPUS`` when the tool gives
    a process's memory only summed over its GPUs."""

    gpus: list[GpuInfo] = field(default_factory=list)
    used: dict[tuple[int, int], float] = field(default_factory=dict)


class GpuProbe(Protocol):
    name: str

    def snapshot(self) -> GpuSnapshot: ...


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def norm_bus_id(text: str) -> str:
    """``00000000:18:00.0`` (nvidia-smi) and ``0000:18:00.0`` (CUDA) as one form, lower case."""
    parts = text.strip().lower().split(":")
    if len(parts) != 3:
        return ""
    try:
        return f"{int(parts[0], 16):04x}:{int(parts[1], 16):02x}:{parts[2]}"
    except ValueError:
        return ""


def parse_nvidia_gpus(text: str) -> list[GpuInfo]:
    """``index, uuid, name, memory.used, memory.total[, pci.bus_id]`` lines (MiB)."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        bus = norm_bus_id(parts[-1]) if len(parts) >= 6 else ""
        nums = parts[-3:-1] if bus else parts[-2:]
        name = ", ".join(parts[2 : len(parts) - (3 if bus else 2)])
        out.append(GpuInfo(int(parts[0]), name, _num(nums[0]), _num(nums[1]), parts[1], bus))
    return out


def parse_compute_apps(text: str, uuid_index: dict[str, int] | None = None) -> dict[tuple[int, int], float]:
    """``pid, gpu_uuid, used_memory`` lines as MiB per (GPU index, pid), summed; a uuid not in
    ``uuid_index`` (or an old two-field ``pid, used_memory`` line) counts as ``ALL_GPUS``.
    Lines that do not parse are skipped."""
    out: dict[tuple[int, int], float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) not in (2, 3) or not parts[0].isdigit() or (mib := _num(parts[-1])) is None:
            continue
        gpu = (uuid_index or {}).get(parts[1], ALL_GPUS) if len(parts) == 3 else ALL_GPUS
        key = (gpu, int(parts[0]))
        out[key] = out.get(key, 0.0) + mib
    return out


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object in a tool's output (rocm-smi may print WARNING lines before it)."""
    start = text.find("{")
    if start < 0:
        raise GpuToolError("rocm-smi printed no JSON")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise GpuToolError(f"rocm-smi JSON unreadable: {exc}") from None
    if not isinstance(obj, dict):
        raise GpuToolError("rocm-smi JSON is not an object")
    return obj


def parse_rocm(text: str) -> GpuSnapshot:
    """``rocm-smi --showmeminfo vram --showpids --json``: per card ``VRAM Total (Used) Memory
    (B)``; per KFD process ``"PID<pid>": "<name>, <n gpus>, <vram bytes>, <sdma>, <cu>"`` under
    ``system`` (the name's own spaces become ", " too, so fields are read from the end). The
    process figure is summed over its GPUs: it counts as ``ALL_GPUS``."""
    data = _json_object(text)
    snap = GpuSnapshot()
    for key, card in data.items():
        if key.startswith("card") and key[4:].isdigit() and isinstance(card, dict):
            total = _num(str(card.get("VRAM Total Memory (B)", "")))
            used = _num(str(card.get("VRAM Total Used Memory (B)", "")))
            snap.gpus.append(GpuInfo(int(key[4:]), key, used / MIB if used is not None else None,
                                     total / MIB if total is not None else None))  # fmt: skip
    system = data.get("system")
    for key, value in system.items() if isinstance(system, dict) else ():
        parts = [p.strip() for p in str(value).split(",")]
        if key.startswith("PID") and key[3:].isdigit() and len(parts) >= 5:
            vram = _num(parts[-3])
            if vram is not None:
                snap.used[(ALL_GPUS, int(key[3:]))] = vram / MIB
    return snap


def run_tool(argv: list[str]) -> str:
    """A GPU tool's stdout; ``GpuToolError`` (the note) when it cannot run or fails."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GpuToolError(f"{argv[0]} failed: {exc}") from None
    if res.returncode != 0:
        raise GpuToolError(f"{argv[0]} exited {res.returncode}: {res.stderr.strip()[:200]}")
    return res.stdout


@dataclass(slots=True)
class NvidiaSmi:
    exe: str
    name: str = "nvidia-smi"

    def snapshot(self) -> GpuSnapshot:
        gpus = parse_nvidia_gpus(run_tool([self.exe, *NVIDIA_GPUS]))
        index = {g.uuid: g.index for g in gpus}
        return GpuSnapshot(gpus, parse_compute_apps(run_tool([self.exe, *NVIDIA_APPS]), index))


@dataclass(slots=True)
class RocmSmi:
    exe: str
    name: str = "rocm-smi"

    def snapshot(self) -> GpuSnapshot:
        return parse_rocm(run_tool([self.exe, *ROCM_ARGS]))


def find_probe(path: str | None = None) -> tuple[GpuProbe | None, str]:
    """(probe, '') for the first tool on PATH (nvidia-smi, then rocm-smi); (None, note) without."""
    if exe := shutil.which("nvidia-smi", path=path):
        return NvidiaSmi(exe), ""
    if exe := shutil.which("rocm-smi", path=path):
        return RocmSmi(exe), ""
    return None, "no nvidia-smi or rocm-smi: GPU memory per process not measured"
