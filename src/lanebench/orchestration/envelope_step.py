"""The operating envelope as a step of a run: each lane sized for its deepest conversation and
widest concurrency before anything starts, refused with the numbers when it cannot hold them;
after the job, its cells summarised (``analysis.envelope``) with the kernel view at each depth
and the KV the cell's conversations occupy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from lanebench.analysis.cachework import add_cache_work, align
from lanebench.analysis.envelope import summarize_cells
from lanebench.analysis.serverlog import last_run
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import Engine
from lanebench.errors import BadInput
from lanebench.memory.logparse import kv_caches, kv_in_use_mib
from lanebench.records.baseline import BaselineRecord
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord
from lanebench.server.cachelog import CacheLog, read_cache_log

KernelAt = Callable[[int], BaselineRecord | None]  # depth -> the kernel view measured at it


def lane_for_job(lane: LaneSpec, engine: Engine, job: JobSpec) -> LaneSpec:
    """The lane as the envelope needs it. Slots follow the widest concurrency unless the lane sets
    them; then a concurrency beyond them is refused (each stream holds a conversation of its own
    in a slot of its own). A depth needs an engine that can continue a conversation."""
    if not job.envelope:
        return lane
    label = f"lane {lane.name!r}"
    widest = max(job.concurrency_levels)
    if max(job.depth_levels) > 0 and not engine.conversations:
        raise BadInput(
            f"{label}: --depth {max(job.depth_levels)}: engine {engine.name!r} cannot continue a "
            "conversation held in a slot; the envelope's depths need llama.cpp (or an openai lane on "
            "llama-server)"
        )
    if "slots" in lane.model_fields_set or lane.url is not None:
        if lane.url is None and lane.slots < widest:
            raise BadInput(
                f"{label}: field 'slots' = {lane.slots}: --concurrency {widest} needs {widest} slots "
                "(each stream keeps its conversation in a slot of its own); leave slots empty to "
                "follow the concurrency"
            )
        return lane
    return lane.model_copy(update={"slots": widest})


def envelope_flags(cells: list[CellSummary]) -> list[str]:
    """What a reader must know: prefixes prefilled again, cells with failed requests."""
    flags = []
    missed = [c for c in cells if c.depth > 0 and c.requests and not c.reused]
    if missed:
        c = missed[0]
        flags.append(
            f"conversation prefix not reused: at depth {c.depth:,} x {c.concurrency} stream(s) "
            f"{c.requests - c.reuse_ok} of {c.requests} requests found only {c.reuse_min} cached tokens "
            "(timings.cache_n); their prefill and decode are not at that depth"
            + (f" (and {len(missed) - 1} more cells)" if len(missed) > 1 else "")
        )
    again = [
        c for c in cells if c.depth > 0 and c.reused and c.reuse_min is not None and c.reuse_min < c.depth
    ]
    if again:
        k = max(c.depth - (c.reuse_min or 0) for c in again)
        flags.append(
            f"prefix reused with up to {k} token(s) of it evaluated again (timings.cache_n >= depth - {k} "
            f"in {len(again)} cell(s): the server resumes from its context checkpoint): their prefill "
            "covers those tokens too; decode is at depth"
        )
    failed = sum(c.failed for c in cells)
    if failed:
        flags.append(f"{failed} request(s) of the envelope failed (see the samples)")
    return flags


def _log_text(log_path: str | None) -> str | None:
    """The lane's log, its last server run only (``analysis.serverlog``); None without one."""
    if not log_path:
        return None
    try:
        return last_run(Path(log_path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def _placed(cache_log: CacheLog | None, own: Sequence[RequestRecord]) -> list[tuple[float, float]] | None:
    """The log's prompt-cache work in Unix time (start, seconds), laid beside ``own``, the requests
    its server run measured; None when it cannot be placed."""
    if cache_log is None:
        return None
    offset = align(cache_log.launches, (r.t_start for r in own))
    if offset is None:
        return None
    return [(e.start + offset, e.seconds) for e in cache_log.events]


def cache_flag(named: list[CellSummary]) -> str | None:
    """The lane's flag when the prompt cache was named in some cells (``analysis.cachework``)."""
    if not named:
        return None
    where = ", ".join(f"{c.depth:,} x {c.concurrency}" for c in named[:4]) + (" …" if len(named) > 4 else "")
    total = sum(c.cache_s or 0.0 for c in named)
    return (
        f"time to first token beyond the engine's prompt timer is mostly the server's host-RAM "
        f"prompt cache in {len(named)} cell(s) "
        f"(depth x streams: {where}; its log: {total:.1f} s of saves inside their batches); "
        "cache_ram = 0 on the lane measures it without"
    )


def summarize_envelope(
    result: LaneResult, job: JobSpec, kernel_at: KernelAt | None = None, kept: Sequence[RequestRecord] = ()
) -> None:
    """Fill ``result.envelope`` from its raw records, with the kernel view at each depth, the KV
    and the prompt-cache work the server's log shows, and add the envelope's flags. ``kept``: the
    requests a resume kept (an earlier server's, whose log run is not this one): the log's
    prompt-cache work is laid beside the others only, and their cells get none (not measured)."""
    cells = summarize_cells(result.samples, result.aggregates)
    text = _log_text(result.log_path)
    caches = kv_caches(text) if text else []
    cache_log = read_cache_log(text) if text else None
    kernels = {d: kernel_at(d) for d in {c.depth for c in cells}} if kernel_at else {}
    for c in cells:
        c.kv_mib = kv_in_use_mib(caches, c.depth, c.concurrency, job.n_in, job.n_out) if caches else None
        base = kernels.get(c.depth)
        if base is not None:
            c.kernel_prefill, c.kernel_decode = base.prefill_tps, base.decode_tps
    earlier = {id(r) for r in kept}
    own = [r for r in result.samples if id(r) not in earlier]
    placed_in = {(r.depth, r.concurrency) for r in own}
    named = add_cache_work(cells, result.samples, _placed(cache_log, own), placed_in)
    result.envelope = cells
    result.flags += envelope_flags(cells)
    if flag := cache_flag(named):
        result.flags.append(flag)
