"""The figures lanebench measures: one table of key, label, unit, which way is better and whose
view it is.

Every module that names a figure (summaries, tables, comparisons, plots, tune's goals, busy
marks) takes it from here, so a figure is added or renamed in one place. ``Fig`` values are the
keys used in summaries, busy marks, comparisons, JSON and the store. The job's figures (views
engine, client, derived) are summarised per lane as median (min–max); the kernel view's come
from llama-bench (``BaselineRecord``), memory figures from ``MemoryRecord`` (one per lane, no
spread; per device too), quality ones from llama-perplexity, the RPC round trip from each
endpoint's probe (``PlacementRecord``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fig(StrEnum):
    PREFILL = "prefill_tps"
    DECODE = "decode_tps"
    PREFILL_CLIENT = "prefill_client_tps"
    DECODE_CLIENT = "decode_client_tps"
    WALL = "wall_s"
    NORMALIZED_WALL = "normalized_wall_s"
    AGGREGATE = "aggregate_tps"
    ACCEPTANCE = "acceptance"
    MEAN_ACCEPTED_LENGTH = "mean_accepted_length"
    # quality against the reference lane (llama-perplexity); values with ± errors, not medians
    KLD_MEAN = "kld_mean"
    SAME_TOP1 = "same_top1"
    PPL = "ppl"
    # the kernel view: llama-bench with the lane's settings (records.baseline.BaselineRecord)
    KERNEL_PREFILL = "kernel_prefill_tps"
    KERNEL_DECODE = "kernel_decode_tps"
    # memory of the lane's server, MiB (records.memory.MemoryRecord; DeviceMemory per device)
    WEIGHTS = "weights_mib"
    KV = "kv_mib"
    COMPUTE = "compute_mib"
    DRAFT = "draft_mib"
    PEAK_RSS = "peak_rss_mib"
    HWM = "hwm_mib"
    PEAK_VRAM = "peak_vram_mib"
    ESTIMATE = "estimate_mib"
    # round trip of small requests to each RPC endpoint before the lane started (records.placement)
    RPC_RTT = "rpc_rtt_ms"


@dataclass(frozen=True, slots=True)
class Figure:
    key: Fig
    label: str
    unit: str
    higher_is_better: bool
    # whose view: the engine's own timings, the client's clock, derived from both, the kernel
    # (llama-bench), quality (llama-perplexity), memory, rpc
    view: str = "engine"
    # the record field it is read from, for figures not in a lane's summary: QualityRecord's for
    # quality, MemoryRecord's (and DeviceMemory's) for memory, the phase of BaselineRecord
    # (``<phase>_tps``) for the kernel
    field: str = ""

    @property
    def better(self) -> int:
        """+1 when higher is better, -1 when lower is."""
        return 1 if self.higher_is_better else -1


_ALL = (
    Figure(Fig.PREFILL, "Prefill", "tok/s", True),
    Figure(Fig.DECODE, "Decode", "tok/s", True),
    Figure(Fig.NORMALIZED_WALL, "Normalized wall", "s", False, "derived"),
    Figure(Fig.AGGREGATE, "N-slot aggregate", "tok/s", True, "client"),
    Figure(Fig.WALL, "Measured wall", "s", False, "client"),
    Figure(Fig.PREFILL_CLIENT, "Prefill (client)", "tok/s", True, "client"),
    Figure(Fig.DECODE_CLIENT, "Decode (client)", "tok/s", True, "client"),
    Figure(Fig.ACCEPTANCE, "Acceptance", "", True),
    Figure(Fig.MEAN_ACCEPTED_LENGTH, "Mean accepted length", "tokens", True),
    Figure(Fig.KLD_MEAN, "Mean KLD vs reference", "nats/token", False, "quality", "kld_mean"),
    Figure(Fig.SAME_TOP1, "Same top-1 as reference", "%", True, "quality", "same_top1"),
    Figure(Fig.PPL, "Perplexity", "", False, "quality", "ppl"),
    Figure(Fig.KERNEL_PREFILL, "Kernel prefill", "tok/s", True, "kernel", "prefill"),
    Figure(Fig.KERNEL_DECODE, "Kernel decode", "tok/s", True, "kernel", "decode"),
    Figure(Fig.WEIGHTS, "Weights", "MiB", False, "memory", "weights"),
    Figure(Fig.KV, "KV", "MiB", False, "memory", "kv"),
    Figure(Fig.COMPUTE, "Compute", "MiB", False, "memory", "compute"),
    Figure(Fig.DRAFT, "Draft", "MiB", False, "memory", "draft"),
    Figure(Fig.PEAK_RSS, "Peak RSS", "MiB", False, "memory", "peak_rss"),
    Figure(Fig.HWM, "RSS high-water mark", "MiB", False, "memory", "hwm"),
    Figure(Fig.PEAK_VRAM, "Peak VRAM", "MiB", False, "memory", "peak_vram"),
    Figure(Fig.ESTIMATE, "Estimate", "MiB", False, "memory", "estimate"),
    Figure(Fig.RPC_RTT, "RPC RTT", "ms", False, "rpc"),
)
FIGURES: dict[Fig, Figure] = {f.key: f for f in _ALL}


def of_view(*views: str) -> tuple[Figure, ...]:
    """The figures of ``views``, in the table's order."""
    return tuple(f for f in _ALL if f.view in views)


SPEED = tuple(f.key for f in of_view("engine", "client", "derived"))  # summarised as median (min–max)
KERNEL = tuple(f.key for f in of_view("kernel"))
MEMORY = of_view("memory")


def label(key: Fig, with_unit: bool = True) -> str:
    f = FIGURES[key]
    return f"{f.label} ({f.unit})" if with_unit and f.unit else f.label
