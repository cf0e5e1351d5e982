"""What a lane's server took in memory (``MemoryRecord``): the log's buffers, peak RSS and VRAM,
the estimate made before start, and the same per device (``DeviceMemory``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from lanebench.records.codec import Record

HOST = "host"  # the device entry that holds every host buffer


@dataclass(slots=True)
class DeviceMemory(Record):
    """One device of a lane's server, in MiB (``lanebench.memory.devices`` fills it): the server
    log's buffers of the main model on it (``weights``, ``kv``, ``compute`` with the output
    buffer), every buffer of the draft model or head on it (``draft``), its share of the main
    model's weights outside host memory (``weights_share``, 0..1; None for ``host``), and its GPU's
    peak for the lane's processes, its size and label (``peak_vram``, ``vram_total``, ``gpu``).
    None where the device has none or it was not measured."""

    device: str
    weights: float | None = None
    kv: float | None = None
    compute: float | None = None
    draft: float | None = None
    weights_share: float | None = None
    peak_vram: float | None = None
    vram_total: float | None = None
    gpu: str | None = None

    @property
    def logged(self) -> bool:
        """The server log names buffers on this device (not only a GPU tool's peak)."""
        return any(v is not None for v in (self.weights, self.kv, self.compute, self.draft))


DEVICE_KEYS = tuple(f.name for f in fields(DeviceMemory))  # the CSV's per-device columns, in order


@dataclass(slots=True)
class MemoryRecord(Record):
    """What a lane's server took, in MiB: the server log's own breakdown (main model's weights,
    KV, compute and output buffers; ``draft`` = every buffer of the draft model or head), the
    process tree's peak resident memory sampled during the job and the kernel's high-water mark,
    GPU memory per nvidia-smi/rocm-smi, and the estimate made before start.

    ``peak_rss``/``hwm`` sum every process group of the lane (``groups``: llama-server and any
    local RPC servers); ``peak_vram`` is the peak over samples of the lane's processes' GPU memory
    summed over GPUs (``vram_tool`` names the tool). ``devices``: one entry per device the log
    names, host buffers as one ``host`` entry, last."""

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
    devices: list[DeviceMemory] = field(default_factory=list)
    vram_tool: str | None = None
    groups: int | None = None  # process groups sampled
