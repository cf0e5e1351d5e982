"""A lane's ``MemoryRecord`` from what the run saw: the server log, the RSS sampler, nvidia-smi."""

from __future__ import annotations

from pathlib import Path

from lanebench.memory.logparse import parse_buffers
from lanebench.memory.proc import RssSampler
from lanebench.records import MemoryRecord

KIB_PER_MIB = 1024


def from_log(rec: MemoryRecord, text: str) -> None:
    """Fill the log's breakdown (main model; every buffer of the later models as ``draft``)."""
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


def memory_record(
    ctx: int,
    slots: int,
    log_path: Path | None,
    sampler: RssSampler | None,
    gpu: tuple[dict[int, float] | None, str] | None = None,
    estimate: float | None = None,
) -> MemoryRecord:
    rec = MemoryRecord(ctx=ctx, slots=slots, estimate=round(estimate, 2) if estimate else None)
    if log_path is not None:
        try:
            from_log(rec, log_path.read_text(errors="replace"))
        except OSError as exc:
            rec.notes.append(f"server log unreadable: {exc}")
    if sampler is not None and sampler.samples:
        rec.peak_rss = round(sampler.peak_kib / KIB_PER_MIB, 2)
        rec.hwm = round(sampler.hwm_total_kib / KIB_PER_MIB, 2)
    if gpu is not None:
        by_pid, note = gpu
        if by_pid is None:
            rec.notes.append(note)
        elif sampler is not None:
            rec.peak_vram = round(sum(v for p, v in by_pid.items() if p in sampler.hwm_kib), 2)
    return rec
