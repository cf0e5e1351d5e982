"""A lane's ``MemoryRecord`` from what the run saw: the server log, the RSS sampler over the
lane's process groups, the GPU sampler (nvidia-smi/rocm-smi)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lanebench.analysis.serverlog import last_run
from lanebench.memory.devices import add_gpu_peaks, device_breakdown
from lanebench.memory.logparse import parse_buffers, parse_device_ids
from lanebench.memory.proc import RssSampler
from lanebench.memory.vram import VramSampler
from lanebench.records.memory import MemoryRecord

KIB_PER_MIB = 1024
VULKAN_NOTE = "Vulkan has no per-process memory query: the Vulkan devices' figures are the log's buffers"


def from_log(rec: MemoryRecord, text: str) -> None:
    """Fill the log's breakdown (main model; every buffer of the later models as ``draft``) and
    the per-device entries."""
    models = parse_buffers(text)
    if not models:
        rec.notes.append("the server log has no buffer sizes (older verbosity flags?)")
        return
    main, *rest = models
    rec.weights = round(sum(main.weights.values()), 2)
    rec.kv = round(sum(main.kv.values()), 2)
    rec.compute = round(sum(main.compute.values()), 2)
    rec.draft = round(sum(m.total() for m in rest), 2) if rest else None
    rec.log_host = round(sum(m.host() for m in models), 2)
    rec.devices = device_breakdown(models)
    if any(d.device.startswith("Vulkan") for d in rec.devices):
        rec.notes.append(VULKAN_NOTE)


def from_vram(
    rec: MemoryRecord, vram: VramSampler, device_ids: Mapping[str, str], env: Mapping[str, str]
) -> None:
    """The lane's peak VRAM (sum over GPUs, peak over samples) and each GPU's peak."""
    rec.notes += vram.notes()
    if vram.probe is None or not vram.samples:
        return
    rec.vram_tool = vram.probe.name
    rec.peak_vram = round(vram.peak_mib or 0.0, 2)
    add_gpu_peaks(rec.devices, vram.peak_by_gpu, vram.gpus, device_ids, env)
    if vram.probe.name == "rocm-smi" and rec.peak_vram:
        rec.notes.append("rocm-smi gives VRAM per process summed over its GPUs: no per-GPU peak")


def memory_record(
    ctx: int,
    slots: int,
    log_path: Path | None,
    sampler: RssSampler | None,
    vram: VramSampler | None = None,
    estimate: float | None = None,
    env: Mapping[str, str] | None = None,
) -> MemoryRecord:
    """``env``: the server's environment (for matching GPUs to the log's devices)."""
    rec = MemoryRecord(ctx=ctx, slots=slots, estimate=round(estimate, 2) if estimate else None)
    text = ""
    if log_path is not None:
        try:
            text = last_run(log_path.read_text(errors="replace"))  # this server's, not an earlier one's
            from_log(rec, text)
        except OSError as exc:
            rec.notes.append(f"server log unreadable: {exc}")
    if sampler is not None:
        rec.groups = len(sampler.pgids)
        if sampler.samples:
            rec.peak_rss = round(sampler.peak_kib / KIB_PER_MIB, 2)
            rec.hwm = round(sampler.hwm_total_kib / KIB_PER_MIB, 2)
    if vram is not None:
        from_vram(rec, vram, parse_device_ids(text), env or {})
    return rec
