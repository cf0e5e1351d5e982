"""Envelope cells and lanes built by hand for the report's unit tests: a cell measured in 3
batches with a chosen decode and spread, and two lanes that differ in a known way (FAST leads SLOW
by 1.37x at depth 0, one stream)."""

from __future__ import annotations

from pathlib import Path

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult
from lanebench.records.samples import Stat

JOB = JobSpec(n_in=64, n_out=32, reps=3, depths=[0, 4096], concurrency=[1, 2])
MODEL = Path("/m/gemma.gguf")
KEYS = [(0, 1), (0, 2), (4096, 1), (4096, 2)]


def spread(median: float, rel: float = 0.02, n: int = 6) -> Stat:
    return Stat(median=median, min=median * (1 - rel), max=median * (1 + rel), n=n)


def cell(depth: int, streams: int, decode: float, rel: float = 0.02, **extra: object) -> CellSummary:
    """A cell measured in 3 batches: decode per stream ``decode``, the steady aggregate
    ``streams`` times it, TTFT growing with depth and streams."""
    c = CellSummary(depth, streams, reps=3, requests=3 * streams, reuse_ok=3 * streams)
    c.decode, c.prefill = spread(decode, rel, 3 * streams), spread(900.0, rel, 3 * streams)
    c.aggregate, c.nslot_aggregate = spread(decode * streams, rel, 3), spread(0.6 * decode * streams, rel, 3)
    ttft = 0.05 * streams * (1 + depth / 4096)
    c.ttft, c.ttft_p50, c.ttft_p95 = spread(ttft, rel, 3 * streams), ttft, ttft * 1.02
    c.requests_per_min, c.kv_mib = 120.0 / streams, 2.5 + depth / 1024
    for k, v in extra.items():
        setattr(c, k, v)
    return c


def lane(name: str, decodes: dict[tuple[int, int], float], rel: float = 0.02, spec: LaneSpec | None = None,
         **extra: object) -> LaneResult:  # fmt: skip
    result = LaneResult(name=name, lane=spec or LaneSpec(name=name, model=MODEL))
    result.envelope = [cell(d, c, v, rel, **extra) for (d, c), v in decodes.items()]
    return result


FAST = {(0, 1): 137.0, (0, 2): 120.0, (4096, 1): 117.0, (4096, 2): 100.0}
SLOW = {(0, 1): 100.0, (0, 2): 90.0, (4096, 1): 100.0, (4096, 2): 85.0}
