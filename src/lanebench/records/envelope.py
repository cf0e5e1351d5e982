"""The operating envelope of a lane: one summary per cell, a cell being a context depth (tokens of
conversation the server already holds) and a concurrency (streams at once).

Figures per cell (``CellSummary``), each a ``Stat`` over its samples so the winner map can judge
two lanes from it (``analysis.noise.judge_stats``):

- ``decode`` / ``decode_client``: each stream's decode rate (the engine's timer / the client's
  token arrivals), over streams x repetitions;
- ``prefill``: each stream's prefill of the job's ``n_in`` new tokens (the engine's timer);
- ``ttft``: each stream's time to first token (s), with its p50 and p95; ``ttft_beyond``: the part
  of it outside the engine's prompt timer, and ``cache_s`` / ``cache_events``: the prompt-cache
  work the server's log shows inside the cell's batches (``server.cachelog``);
- ``aggregate``: decode throughput in the steady state, one sample per batch: tokens that arrived
  while every stream was decoding, over that window (``analysis.envelope.steady_window``);
- ``nslot_aggregate``: the seed report's N-slot figure, one sample per batch: generated tokens over
  the batch's wall, prefill included (never shown beside decode as the same kind of figure);
- ``requests_per_min``: requests finished per minute of the cell's batches;
- ``acceptance``: drafted tokens accepted over drafted, over the cell's requests;
- ``reuse``: how many requests found the conversation's prefix in the server's cache
  (``timings.cache_n == depth``) and the smallest ``cache_n`` seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lanebench.records.codec import Record
from lanebench.records.samples import Stat

CellKey = tuple[int, int]  # (depth, concurrency)


@dataclass(slots=True)
class CellSummary(Record):
    """One (depth, concurrency) cell of a lane's envelope."""

    depth: int
    concurrency: int
    reps: int = 0  # batches measured
    requests: int = 0  # requests that came back whole
    failed: int = 0
    decode: Stat | None = None
    decode_client: Stat | None = None
    prefill: Stat | None = None
    ttft: Stat | None = None
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    ttft_beyond: Stat | None = None  # per request: time to first token − the engine's prompt time (s)
    cache_s: float | None = None  # the server's prompt-cache work inside the cell's batches (s, its log)
    cache_events: int = 0  # saves and updates of the prompt cache inside the cell's batches
    aggregate: Stat | None = None
    aggregate_check: Stat | None = None  # per batch: steady aggregate / sum of per-stream window rates
    nslot_aggregate: Stat | None = None
    requests_per_min: float | None = None
    acceptance: float | None = None
    reuse_ok: int = 0
    reuse_min: int | None = None
    kv_mib: float | None = None  # KV the cell's contexts occupy, from the server log's per-cell size
    kernel_prefill: float | None = None  # llama-bench pp n_in @ depth (tok/s), when asked
    kernel_decode: float | None = None  # llama-bench tg n_out @ depth + n_in
    busy: int = 0  # batches measured while the machine was busy
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> CellKey:
        return (self.depth, self.concurrency)

    @property
    def reused(self) -> bool:
        """Every measured request found the whole prefix in the server's cache."""
        return self.requests > 0 and self.reuse_ok == self.requests
