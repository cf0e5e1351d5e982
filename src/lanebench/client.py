"""Async streaming HTTP client for llama-server's ``/completion``: it stamps times, nothing else.

The streaming path uses aiohttp and parses SSE lines cheaply so the client is never the
bottleneck of what it measures (DESIGN.md). Parsing of the stream lives in ``parse_sse_line``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import aiohttp

from lanebench.records import RequestRecord, SampleKind


def parse_sse_line(line: bytes) -> dict[str, Any] | None:
    """Decode one ``data: {...}`` line of a llama-server stream; None for anything else."""
    line = line.strip()
    if not line.startswith(b"data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == b"[DONE]":
        return None
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def chunk_tokens(chunk: dict[str, Any]) -> int:
    """How many generated tokens a stream chunk carries (a draft round may carry several)."""
    toks = chunk.get("tokens")
    if isinstance(toks, list):
        return len(toks)
    return 1 if chunk.get("content") else 0


def completion_body(
    prompt: list[int], n_out: int, seed: int, speculative: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The request of the standard job: exact prompt tokens, fixed output length, greedy."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "n_predict": n_out,
        "ignore_eos": True,
        "cache_prompt": False,
        "temperature": 0.0,
        "seed": seed,
        "stream": True,
        "return_tokens": True,
    }
    for key, value in (speculative or {}).items():
        body[f"speculative.{key}"] = value  # llama-server reads flat dotted keys
    return body


async def stream_completion(
    session: aiohttp.ClientSession,
    base_url: str,
    body: dict[str, Any],
    *,
    kind: SampleKind,
    rep: int,
    stream_index: int = 0,
    timeout_s: float = 3600.0,
) -> RequestRecord:
    """Send one streaming completion; a failure comes back as a record with ``ok=False``."""
    rec = RequestRecord(
        kind=kind, rep=rep, n_in=len(body["prompt"]), n_out=int(body["n_predict"]), stream_index=stream_index
    )
    rec.t_start = time.time()
    t0 = time.perf_counter()
    t_first: float | None = None
    t_last: float | None = None
    digest = hashlib.sha256()
    try:
        async with session.post(
            f"{base_url}/completion", json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            if resp.status != 200:
                text = (await resp.text())[:300]
                rec.ok, rec.error = False, f"HTTP {resp.status}: {text}"
                return rec
            async for raw in resp.content:
                chunk = parse_sse_line(raw)
                if chunk is None:
                    continue
                n = chunk_tokens(chunk)
                if n:
                    now = time.perf_counter()
                    t_first = t_first or now
                    t_last = now
                    rec.stream_tokens += n
                    digest.update(str(chunk.get("content", "")).encode())
                if "error" in chunk:
                    rec.ok, rec.error = False, str(chunk["error"])[:300]
                if isinstance(chunk.get("timings"), dict) and chunk.get("stop"):
                    rec.timings = chunk["timings"]
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        rec.ok, rec.error = False, f"{type(exc).__name__}: {exc}"[:300]
    rec.wall_s = time.perf_counter() - t0
    if t_first is not None:
        rec.ttft_s = t_first - t0
        rec.decode_stream_s = (t_last or t_first) - t_first
    rec.content_sha = digest.hexdigest()
    if rec.ok and not rec.timings:
        rec.ok, rec.error = False, "stream ended without a final chunk carrying timings"
    return rec


async def get_json(session: aiohttp.ClientSession, url: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body``) and decode JSON; raises aiohttp errors to the caller."""
    if body is None:
        async with session.get(url) as resp:
            resp.raise_for_status()
            return await resp.json()
    async with session.post(url, json=body) as resp:
        resp.raise_for_status()
        return await resp.json()


async def get_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        resp.raise_for_status()
        return await resp.text()
