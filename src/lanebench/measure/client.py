"""Async streaming HTTP client: it sends an engine's request, stamps times, and nothing else.

The streaming path uses aiohttp and parses lines cheaply so the client is never the bottleneck
of what it measures (DESIGN.md; ``bench/client_ceiling.py`` measures it). What a chunk means is
the engine's business: each engine's ``StreamReader`` turns a decoded chunk into tokens and
figures. Lines are SSE (``data: {...}``) or NDJSON (``{...}``, Ollama).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import aiohttp

from lanebench.engines.base import Request, StreamReader
from lanebench.records.samples import RequestRecord, SampleKind


def parse_sse_line(line: bytes) -> dict[str, Any] | None:
    """Decode one ``data: {...}`` (SSE) or ``{...}`` (NDJSON) line; None for anything else."""
    line = line.strip()
    if line.startswith(b"data:"):
        line = line[5:].strip()
    elif not line.startswith(b"{"):
        return None
    if not line or line == b"[DONE]":
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class _Arrivals:
    """What one streamed reply brought, read by read: tokens, chunks, text and their times.

    Times are stamped per read (its tokens arrived together): the first read that carried
    tokens is the time to first token, the last one ends ``decode_stream_s``. Tokens are what the
    reader counted (``RequestRecord`` says how), never chunks taken for tokens."""

    __slots__ = ("reader", "reads", "rec", "t_first", "t_last", "texts")

    def __init__(self, reader: StreamReader, rec: RequestRecord) -> None:
        self.reader, self.rec = reader, rec
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.texts: list[str] = []
        self.reads: list[tuple[float, int]] = []  # (when, tokens) of each read that carried tokens

    def take(self, lines: list[bytes], now: float) -> None:
        """Hand each decoded line to the reader; ``now`` is when the read arrived."""
        n = 0
        for line in lines:
            chunk = parse_sse_line(line)
            if chunk is not None:
                k, text = self.reader.feed(chunk)
                if text:
                    self.texts.append(text)
                if k or text:
                    n += k
                    self.rec.stream_chunks += 1
        if n:
            if self.t_first is None:
                self.t_first, self.rec.first_tokens = now, n
            self.t_last = now
            self.rec.stream_tokens += n
            self.reads.append((now, n))

    def finish(self, t0: float) -> None:
        """Times relative to the request's start ``t0``, and what the reader kept."""
        rec, reader = self.rec, self.reader
        rec.wall_s = time.perf_counter() - t0
        if self.t_first is not None:
            rec.ttft_s = self.t_first - t0
            rec.decode_stream_s = (self.t_last or self.t_first) - self.t_first
        if rec.kind == "cell":  # the envelope's steady-state window needs every arrival
            rec.arrivals = [[round(t - t0, 6), float(n)] for t, n in self.reads]
        rec.token_count = str(reader.counted_by) if reader.counted_by is not None else None
        rec.content_sha = hashlib.sha256("".join(self.texts).encode()).hexdigest()
        if reader.token_ids:
            rec.tokens_sha = hashlib.sha256(",".join(map(str, reader.token_ids)).encode()).hexdigest()
            if rec.kind != "aggregate":  # sequential requests: the greedy check compares their ids
                rec.token_ids = list(reader.token_ids)
        rec.timings = reader.timings
        if reader.error and rec.ok:
            rec.ok, rec.error = False, reader.error
        if rec.ok and not reader.complete:
            rec.ok, rec.error = False, reader.missing_end()


async def stream_request(
    session: aiohttp.ClientSession,
    base_url: str,
    req: Request,
    reader: StreamReader,
    *,
    kind: SampleKind,
    rep: int,
    stream_index: int = 0,
    timeout_s: float = 3600.0,
    headers: dict[str, str] | None = None,
) -> RequestRecord:
    """Send one streaming request; a failure comes back as a record with ``ok=False``."""
    rec = RequestRecord(kind=kind, rep=rep, n_in=req.n_in, n_out=req.n_out, stream_index=stream_index)
    rec.t_start = time.time()
    t0 = time.perf_counter()
    got = _Arrivals(reader, rec)
    try:
        async with session.post(
            base_url + req.path,
            json=req.body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            if resp.status != 200:
                text = (await resp.text())[:300]
                rec.ok, rec.error = False, f"HTTP {resp.status}: {text}"
                return rec
            rest = b""
            # whatever has arrived, split into lines here: aiohttp's readline costs ~2 µs a line
            # and each SSE event is two lines (bench/client_ceiling.py measures the difference)
            async for data in resp.content.iter_any():
                now = time.perf_counter()  # one stamp per read: its tokens arrived together
                lines = (rest + data if rest else data).split(b"\n")
                rest = lines.pop()
                got.take(lines, now)
            if rest.strip():  # NDJSON's last line may end without a newline
                got.take([rest], time.perf_counter())
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        rec.ok, rec.error = False, f"{type(exc).__name__}: {exc}"[:300]
    got.finish(t0)
    return rec
