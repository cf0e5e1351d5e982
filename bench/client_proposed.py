"""A prototype of a cheaper streaming loop for ``lanebench.measure.client``, measured by client_ceiling.py.

Not used by lanebench. The record it returns must equal client_ceiling.py's ``stream_completion``'s
(lanebench's ``stream_request`` with a ``LlamaReader``) for the same stream (tokens,
``content_sha``, ``timings``, ok/error); client_ceiling.py checks that.

It proposed two changes to the per-line work of ``stream_request``; ``lanebench.measure.client`` has
since taken the second, so what this module still adds is the first, the regex scan. Every line
the scan does not match goes through the real client's own pieces
(``lanebench.measure.client.parse_sse_line`` and the llama.cpp engine's ``LlamaReader``).

1. **No ``json.loads`` for ordinary partial chunks.** llama-server writes its partial chunks
   with nlohmann's ``ordered_json`` in a fixed order and compact form:
   ``{"index":0,"content":"...","tokens":[...],"stop":false,...}``. One compiled regex match
   takes the token count (commas in ``tokens`` + 1) and the content as raw JSON string bytes;
   those are joined and hashed once per request (decoded first only if they hold an escape), so
   ``content_sha`` does not change. Every other line (the final chunk with ``timings``, errors,
   any other shape or engine) takes the exact old path: ``json.loads`` and the engine's reader.
2. **Read what arrived, not a line at a time** (``iter_any=True``): ``resp.content.iter_any()``
   returns everything buffered in one bytes object; ``split(b"\\n")`` cuts it in C, a partial
   last line waits for the next read. ``async for line in resp.content`` instead costs one
   pure-Python ``StreamReader.readline`` per line, and every SSE event is two lines
   (``data: ...`` and the blank one). Times are stamped once per read, when it arrived.
   ``iter_any=False`` keeps the line-by-line reads (client_ceiling.py's ``scan`` mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from typing import Any

import aiohttp

from lanebench.engines.llamacpp.engine import LlamaReader
from lanebench.measure.client import parse_sse_line
from lanebench.records.samples import RequestRecord, SampleKind

# an ordinary llama-server partial: index, content, tokens, then "stop":false
_PARTIAL = re.compile(
    rb'(?:data: ?)?\{"index":\d+,"content":"((?:[^"\\]|\\.)*)","tokens":\[([0-9,]*)\],"stop":false[,}]'
)


class ContentHash:
    """sha256 of the generated text, as ``digest.update(text.encode())`` per chunk gives it.

    Raw JSON string bodies are only collected; they are joined and, if they hold an escape,
    decoded once (escapes never span two chunks' strings, so decoding the concatenation equals
    concatenating the decodings), and hashed when text from the exact path or the end comes."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.raw: list[bytes] = []

    def _flush(self) -> None:
        if self.raw:
            joined = b"".join(self.raw)
            self.raw = []
            if b"\\" in joined:
                with contextlib.suppress(ValueError):  # invalid escapes: hash the bytes as they came
                    joined = json.loads(b'"' + joined + b'"').encode()
            self.digest.update(joined)

    def add_text(self, text: str) -> None:
        self._flush()
        self.digest.update(text.encode())

    def hexdigest(self) -> str:
        self._flush()
        return self.digest.hexdigest()


def take_lines(lines: list[bytes], reader: LlamaReader, content: ContentHash) -> int:
    """Tokens in these lines: the cheap scan for ordinary partials, the exact path for the rest."""
    n = 0
    match = _PARTIAL.match
    keep = content.raw.append
    for line in lines:
        m = match(line)
        if m is not None:
            text, tokens = m.groups()
            if tokens:
                n += tokens.count(b",") + 1
                keep(text)
        elif len(line) > 2:  # not the blank line after every event
            chunk = parse_sse_line(line)
            if chunk is not None:
                k, text = reader.feed(chunk)
                if k:
                    n += k
                    content.add_text(text)
    return n


async def stream_completion_proposed(
    session: aiohttp.ClientSession,
    base_url: str,
    body: dict[str, Any],
    *,
    kind: SampleKind,
    rep: int,
    stream_index: int = 0,
    timeout_s: float = 3600.0,
    iter_any: bool = True,
) -> RequestRecord:
    """``stream_completion`` with the cheap scan (and, with ``iter_any``, reads of what arrived)."""
    rec = RequestRecord(
        kind=kind, rep=rep, n_in=len(body["prompt"]), n_out=int(body["n_predict"]), stream_index=stream_index
    )
    reader = LlamaReader()
    content = ContentHash()
    rec.t_start = time.time()
    t0 = time.perf_counter()
    t_first: float | None = None
    t_last: float | None = None
    try:
        async with session.post(
            f"{base_url}/completion", json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            if resp.status != 200:
                text = (await resp.text())[:300]
                rec.ok, rec.error = False, f"HTTP {resp.status}: {text}"
                return rec
            if iter_any:
                rest = b""
                async for data in resp.content.iter_any():
                    now = time.perf_counter()  # when this read arrived, for all its tokens
                    lines = (rest + data if rest else data).split(b"\n")
                    rest = lines.pop()  # b"" when the read ended on a line end
                    if n := take_lines(lines, reader, content):
                        t_first = t_first or now
                        t_last = now
                        rec.stream_tokens += n
                if rest and (n := take_lines([rest], reader, content)):  # NDJSON's last line
                    now = time.perf_counter()
                    t_first = t_first or now
                    t_last = now
                    rec.stream_tokens += n
            else:
                async for line in resp.content:
                    if n := take_lines([line], reader, content):
                        now = time.perf_counter()
                        t_first = t_first or now
                        t_last = now
                        rec.stream_tokens += n
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        rec.ok, rec.error = False, f"{type(exc).__name__}: {exc}"[:300]
    rec.wall_s = time.perf_counter() - t0
    if t_first is not None:
        rec.ttft_s = t_first - t0
        rec.decode_stream_s = (t_last or t_first) - t_first
    rec.content_sha = content.hexdigest()
    rec.timings = reader.timings
    if reader.error and rec.ok:
        rec.ok, rec.error = False, reader.error
    if rec.ok and not reader.complete:
        rec.ok, rec.error = False, reader.missing_end()
    return rec


def self_check() -> list[str]:
    """The cheap scan against json.loads on lines it must read alike; returns the disagreements."""
    lines = [
        b'data: {"index":0,"content":" the","tokens":[279],"stop":false,"id_slot":-1,"tokens_predicted":1}',
        b'data: {"index":0,"content":" a b","tokens":[1,2,3],"stop":false,"id_slot":-1}',  # a draft round
        b'data: {"index":0,"content":"\\"q\\" \\\\ \\n \\u00e9","tokens":[5],"stop":false}',
        'data: {"index":0,"content":" café 日本","tokens":[7,8],"stop":false}'.encode(),
        b'data: {"index":0,"content":"","tokens":[],"stop":false}',
        b'data: {"index":0,"content":"x","tokens":[9],"stop":false,"timings":{"prompt_n":3}}',
        b'data: {"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"timings":{"prompt_n":3}}',
        b'data: {"error":{"code":500,"message":"boom"}}',
        b'data: {"content":"x","tokens":[1],"stop":false}',  # another field order: exact path
        b"data: [DONE]",
        b"",
    ]
    problems = []
    for line in lines:
        fast, slow = LlamaReader(), LlamaReader()
        d_fast, d_slow = ContentHash(), hashlib.sha256()
        n_fast = take_lines([line], fast, d_fast)
        chunk = parse_sse_line(line)
        n_slow = 0
        if chunk is not None:
            n_slow, text = slow.feed(chunk)
            if n_slow:
                d_slow.update(text.encode())
        got = (n_fast, d_fast.hexdigest(), fast.timings, fast.error, fast.complete)
        want = (n_slow, d_slow.hexdigest(), slow.timings, slow.error, slow.complete)
        if got != want:
            problems.append(f"{line[:60]!r}: scan {got[0]} tokens, json {want[0]}")
    return problems
