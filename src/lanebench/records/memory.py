"""What a lane's server took in memory (``MemoryRecord``): the log's buffers, peak RSS and VRAM,
the estimate made before start."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lanebench.records.samples import _known


@dataclass(slots=True)
class MemoryRecord:
    """What a lane's server took, in MiB: the server log's own breakdown (main model's weights,
    KV, compute and output buffers; ``draft`` = every buffer of the draft model or head), the
    process tree's peak resident memory sampled during the job and the kernel's high-water mark,
    GPU memory per nvidia-smi/rocm-smi, and the estimate made before start.

    ``peak_rss``/``hwm`` sum every process group of the lane (``groups``: llama-server and any
    local RPC servers); ``peak_vram`` is the peak over samples of the lane's processes' GPU memory
    summed over GPUs (``vram_tool`` names the tool). ``devices``: one dict per device the log
    names (keys ``lanebench.memory.devices.DEVICE_KEYS``: weights, kv, compute, draft,
    weights_share, peak_vram, vram_total, gpu; host buffers as one ``host`` entry)."""

    ctx: int = 0
    slots: int = 0
    weights: float | None = None
    kv: float | None = None
    compute: float | None = None
    draft: float | None = None
    log_host: float | None = None  # of the log's buffers, those in host memory
    peak_rss: float | None = None
    hwm: float | None = None
    peak_vram: float | None = None
    estimate: float | None = None
    notes: list[str] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    vram_tool: str | None = None
    groups: int | None = None  # process groups sampled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryRecord:
        return cls(**_known(cls, d))
