"""One request or one batch as measured: the client's times, the engine's own ``timings``, how
tokens were counted, and the summary statistic of a figure (``Stat``). Plain dataclasses, no I/O;
``to_dict``/``from_dict`` give the JSON shape of ``--json`` and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from lanebench.records.busy import LoadRecord
from lanebench.records.codec import Record

# warmup/single/aggregate: the standard job; fill: a conversation's prefix put into a slot; cell:
# a stream of one batch of the envelope (depth x concurrency)
SampleKind = Literal["warmup", "single", "aggregate", "fill", "cell"]


class TokenCount(StrEnum):
    """How a stream's generated tokens were counted, chunk by chunk (best first)."""

    RUNNING = "running"  # the server's running count on each chunk (tokens_predicted, usage, timings)
    IDS = "ids"  # the token ids each chunk carried
    LOGPROBS = "logprobs"  # one logprob entry per token
    CHUNKS = "chunks"  # nothing in the stream said: one token per chunk with text


def is_busy(rec: RequestRecord | AggregateRecord) -> bool:
    """Whether the window of a request or batch was measured while the machine was busy."""
    return rec.load is not None and rec.load.busy


@dataclass(slots=True)
class RequestRecord(Record):
    """One completion request as the client saw it, plus the engine's own ``timings``.

    Times are seconds; ``t_start`` is wall-clock (epoch) for ordering, durations come from a
    monotonic clock. A failed request is data: ``ok`` is False and ``error`` says why.

    ``stream_tokens`` counts generated tokens as the stream carried them (``token_count`` says
    how: a server may send several tokens in one chunk), ``stream_chunks`` the chunks that
    carried any output, ``first_tokens`` the tokens of the first read that carried any (they
    arrived at the time to first token). The engine's own count is ``timings["predicted_n"]``.
    """

    kind: SampleKind
    rep: int
    n_in: int
    n_out: int
    ok: bool = True
    error: str | None = None
    t_start: float = 0.0
    ttft_s: float | None = None
    wall_s: float | None = None
    stream_tokens: int = 0
    decode_stream_s: float | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    content_sha: str | None = None
    stream_index: int = 0
    tokens_sha: str | None = None  # sha256 of the generated token ids, when the engine streams them
    stream_chunks: int = 0
    first_tokens: int | None = None  # None: a record from before tokens were told from chunks
    token_count: str | None = None  # a TokenCount value
    # the generated token ids of a sequential request (warm-up, single), for the greedy check of
    # speculative lanes; None for concurrent requests and engines that stream no ids
    token_ids: list[int] | None = None
    load: LoadRecord | None = None  # what else ran during this request (None: not measured)
    # the envelope (kind "cell", "fill"): tokens of conversation the server held before the
    # prompt, the streams of its batch, its start after the batch's start (s), and its token
    # arrivals ([seconds after its own start, tokens]) for the steady-state window
    depth: int = 0
    concurrency: int = 1
    start_offset_s: float = 0.0
    arrivals: list[list[float]] | None = None

    @property
    def draft_n(self) -> int:
        return int(self.timings.get("draft_n", 0) or 0)

    @property
    def draft_n_accepted(self) -> int:
        return int(self.timings.get("draft_n_accepted", 0) or 0)


@dataclass(slots=True)
class AggregateRecord(Record):
    """One batch of N concurrent jobs: generated tokens over the batch's wall time."""

    rep: int
    streams: int
    wall_s: float
    tokens: int
    ok: bool = True
    error: str | None = None
    load: LoadRecord | None = None  # what else ran during this batch (None: not measured)
    depth: int | None = None  # an envelope cell's batch: its depth (None: the standard job's N-slot batch)

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.wall_s if self.ok and self.wall_s > 0 else None


@dataclass(slots=True)
class Stat(Record):
    """Median with spread over repetitions; ``n`` samples went in."""

    median: float
    min: float
    max: float
    n: int
