"""Memory bandwidth: datasheet peaks of known devices, and a bounded measurement of this host.

The measurement runs numpy reads (``max`` reduction) and copies (``copyto``) on buffers well
above the last-level cache, with one thread per usable core (numpy releases the GIL in both),
and keeps the median of repetitions per size. Copy counts bytes read + bytes written, as
STREAM does. Pure parts (parsing, the device table, summarising samples) do no I/O.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lanebench.errors import BadInput
from lanebench.host.hostinfo import ram_bytes

GB = 1e9


@dataclass(slots=True, frozen=True)
class Device:
    """A device's peak memory bandwidth as its vendor states it."""

    key: str
    name: str
    bandwidth_gbs: float
    source: str
    url: str


KNOWN_DEVICES: dict[str, Device] = {
    d.key: d
    for d in (
        Device(
            "strix-halo",
            "AMD Ryzen AI Max+ 395 (Strix Halo), LPDDR5X-8000, 256-bit",
            256.0,
            "AMD product page: LPDDR5x-8000 on a 256-bit bus, 8000 MT/s x 32 B = 256 GB/s",
            "https://www.amd.com/en/products/processors/laptop/ryzen/ai-max-series/amd-ryzen-ai-max-plus-395.html",
        ),
        Device(
            "h100-sxm",
            "NVIDIA H100 SXM5 80GB (HBM3)",
            3350.0,
            "NVIDIA H100 Tensor Core GPU datasheet (H100 page): GPU memory bandwidth 3.35 TB/s (SXM)",
            "https://www.nvidia.com/en-us/data-center/h100/",
        ),
        Device(
            "h100-pcie",
            "NVIDIA H100 PCIe 80GB (HBM2e)",
            2000.0,
            "NVIDIA H100 PCIe GPU product brief PB-11133-001 (Nov 2022): memory bandwidth 2,000 GB/s",
            "https://www.nvidia.com/en-us/data-center/h100/",
        ),
        Device(
            "h200",
            "NVIDIA H200 SXM 141GB (HBM3e)",
            4800.0,
            "NVIDIA H200 Tensor Core GPU page/datasheet: GPU memory bandwidth 4.8 TB/s",
            "https://www.nvidia.com/en-us/data-center/h200/",
        ),
        Device(
            "rtx-4090",
            "NVIDIA GeForce RTX 4090 (24 GB GDDR6X, 384-bit)",
            1008.0,
            "NVIDIA Ada Lovelace GPU architecture whitepaper, Table 1: 1008 GB/s",
            "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf",
        ),
        Device(
            "rtx-3090",
            "NVIDIA GeForce RTX 3090 (24 GB GDDR6X, 384-bit)",
            936.0,
            "NVIDIA Ampere GA102 GPU architecture whitepaper: 936 GB/s",
            "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf",
        ),
        Device(
            "m2-ultra",
            "Apple M2 Ultra",
            800.0,
            "Apple Newsroom, 'Apple introduces M2 Ultra' (June 2023): 800GB/s unified memory bandwidth",
            "https://www.apple.com/newsroom/2023/06/apple-introduces-m2-ultra/",
        ),
        Device(
            "m4-max",
            "Apple M4 Max (16-core CPU / 40-core GPU)",
            546.0,
            "Apple Newsroom, 'Apple introduces M4 Pro and M4 Max' (Oct 2024): 546GB/s",
            "https://www.apple.com/newsroom/2024/10/apple-introduces-m4-pro-and-m4-max/",
        ),
    )
}


def find_device(name: str) -> Device:
    """A known device by key (case and ``_``/space insensitive); BadInput lists the keys."""
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    if key in KNOWN_DEVICES:
        return KNOWN_DEVICES[key]
    raise BadInput(f"--device: unknown device {name!r} (known: {', '.join(KNOWN_DEVICES)})")


_BW = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmgt]?)(?:b(?:/s|ps)?)?\s*$", re.I)
_UNIT = {"": GB, "k": 1e3, "m": 1e6, "g": GB, "t": 1e12}


def parse_bandwidth(text: str) -> float:
    """Bytes per second from ``"256"`` (GB/s), ``"256GB/s"``, ``"3.35TB/s"``, ``"800 GBps"``."""
    m = _BW.match(text)
    if not m or float(m["num"]) <= 0:
        raise BadInput(
            f"--bandwidth: expected a positive rate such as 256, 256GB/s or 3.35TB/s, got {text!r}"
        )
    return float(m["num"]) * _UNIT[m["unit"].lower()]


@dataclass(slots=True, frozen=True)
class Sample:
    """One timed pass: ``op`` moved ``bytes_moved`` bytes over a ``size_bytes`` buffer."""

    op: str
    size_bytes: int
    threads: int
    seconds: float
    bytes_moved: int

    @property
    def gbs(self) -> float:
        return self.bytes_moved / self.seconds / GB


@dataclass(slots=True)
class BandwidthResult:
    """Median GB/s per operation (over sizes, each the median of its repetitions)."""

    read_gbs: float
    copy_gbs: float
    threads: int
    sizes_bytes: list[int]
    llc_bytes: int
    per_size: dict[str, dict[int, float]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """What decoding is bound by: the read rate (decode reads weights and KV, writes little)."""
        return self.read_gbs * GB

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples"] = [asdict(s) | {"gbs": s.gbs} for s in self.samples]
        return d


def summarize(samples: Sequence[Sample], threads: int, llc_bytes: int) -> BandwidthResult:
    """Median per (op, size), then the median over sizes for each op."""
    per_size: dict[str, dict[int, float]] = {}
    for op in ("read", "copy"):
        sizes = sorted({s.size_bytes for s in samples if s.op == op})
        per_size[op] = {
            size: statistics.median(s.gbs for s in samples if s.op == op and s.size_bytes == size)
            for size in sizes
        }
    if not per_size["read"] or not per_size["copy"]:
        raise ValueError("need read and copy samples")
    return BandwidthResult(
        read_gbs=statistics.median(per_size["read"].values()),
        copy_gbs=statistics.median(per_size["copy"].values()),
        threads=threads,
        sizes_bytes=sorted(per_size["read"]),
        llc_bytes=llc_bytes,
        per_size=per_size,
        samples=list(samples),
    )


def _parse_cache_size(text: str) -> int:
    m = re.match(r"^\s*(\d+)\s*([KMG]?)", text.strip(), re.I)
    if not m:
        return 0
    return int(m[1]) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m[2].upper()]


def llc_bytes(sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """Size of the largest CPU cache (Linux sysfs); 32 MiB when it cannot be read."""
    sizes = [_parse_cache_size(p.read_text()) for p in sysfs.glob("index*/size") if p.is_file()]
    return max(sizes, default=0) or 32 << 20


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_cap() -> int:
    """Largest buffer to use: 1 GiB, or an eighth of physical memory if that is less."""
    phys = ram_bytes()
    return 1 << 30 if phys is None else min(1 << 30, phys // 8)


def plan_sizes(llc: int, cap: int = 1 << 30) -> list[int]:
    """Buffer sizes for the measurement: 4x, 8x, 16x the LLC (at least 64 MiB), capped at ``cap``."""
    return sorted({min(max(k * llc, 64 << 20), cap) // 8 * 8 for k in (4, 8, 16)})


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _measure_size(
    pool: ThreadPoolExecutor, size: int, threads: int, reps: int, deadline: float
) -> list[Sample]:
    src = np.ones(size // 8, dtype=np.float64)  # written once: every page is resident
    dst = np.zeros_like(src)
    src_parts = np.array_split(src, threads)
    dst_parts = np.array_split(dst, threads)

    def read() -> None:
        list(pool.map(np.max, src_parts))

    def copy() -> None:
        list(pool.map(np.copyto, dst_parts, src_parts))

    samples: list[Sample] = []
    for op, fn, moved in (("read", read, src.nbytes), ("copy", copy, 2 * src.nbytes)):
        fn()
        for i in range(reps):
            if i and time.perf_counter() > deadline:
                break
            samples.append(Sample(op, src.nbytes, threads, _timed(fn), moved))
    return samples


def measure_bandwidth(
    sizes: Sequence[int] | None = None,
    threads: int | None = None,
    reps: int = 5,
    budget_s: float = 6.0,
) -> BandwidthResult:
    """Measure achievable read and copy bandwidth of this host's memory (bounded by ``budget_s``).

    Each size gets one untimed warm-up pass per op, then up to ``reps`` timed passes while the
    budget lasts (at least one).
    """
    llc = llc_bytes()
    sizes = list(sizes) if sizes else plan_sizes(llc, memory_cap())
    threads = threads or usable_cores()
    deadline = time.perf_counter() + budget_s
    samples: list[Sample] = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for size in sizes:
            samples += _measure_size(pool, size, threads, reps, deadline)
    return summarize(samples, threads, llc)
