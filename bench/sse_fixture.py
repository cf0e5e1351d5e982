"""A fast local SSE server for benchmarking streaming clients (a benchmark fixture, not an engine).

``POST /completion`` answers like llama-server's streaming ``/completion``: the same response
headers, chunked transfer encoding with one HTTP chunk per SSE event, ``n_predict`` partial events
``data: {"index":0,"content":...,"tokens":[id],"stop":false,...}`` and a final event with
``"stop":true`` and a ``timings`` object (the shapes were copied from a real llama-server
response; the text has characters JSON escapes and non-ASCII ones, written raw as llama-server
does). Nothing is computed: every stream's bytes are built once per (n_predict, prompt length)
and a single pump writes ``burst`` events per ``write()`` to every open stream in turn, round
after round, as fast as the sockets take them (a stream whose transport buffer is full waits).
With ``rate`` (tokens/s over all streams) the pump is paced instead, one event per stream per
round, as an engine decoding all its slots in lock-step delivers them. Connections are kept
alive until the client closes them, as llama-server does (``Keep-Alive: timeout=5, max=100``).

``GET /stats`` returns JSON counters (requests, events written, CPU seconds of this process,
open connections) plus the open-connection samples taken every 100 ms since the last
``GET /stats?reset``, so a client can see from the server's side what was really on the wire.

    python bench/sse_fixture.py --port 8080 [--burst 16 | --rate 50000] [--core 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from typing import Any

_HEAD = (
    b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: \r\n"
    b"X-Accel-Buffering: no\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
)
# plain words, and a few that JSON escapes or that are not ASCII, as real text has
_WORDS = [" the", " of", " and", " to", " a", " in", " is", " that", " for", " it", ".", ","]
_WORDS += ["\n", ' "', " café", "\\"]
_GENERATION_SETTINGS = {"seed": 1, "temperature": 0.0, "top_k": 40, "top_p": 0.95, "n_predict": 0}


def _frame(payload: bytes) -> bytes:
    """One SSE event as one HTTP/1.1 chunk, as llama-server (cpp-httplib) sends it."""
    event = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def stream_frames(n_predict: int, prompt_n: int) -> list[bytes]:
    """The framed body of one streamed completion: partial events, the final one, the terminator."""
    frames = []
    for i in range(n_predict):
        word = _WORDS[i % len(_WORDS)]
        chunk = {
            "index": 0,
            "content": word,
            "tokens": [1000 + i % 30000],
            "stop": False,
            "id_slot": -1,
            "tokens_predicted": i + 1,
            "tokens_evaluated": prompt_n,
        }
        frames.append(_frame(json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode()))
    predicted_ms = max(n_predict, 1) * 0.02
    final = {
        "index": 0,
        "content": "",
        "tokens": [],
        "id_slot": 0,
        "stop": True,
        "model": "sse-fixture",
        "tokens_predicted": n_predict,
        "tokens_evaluated": prompt_n,
        "generation_settings": {**_GENERATION_SETTINGS, "n_predict": n_predict},
        "prompt": "",
        "has_new_line": False,
        "truncated": False,
        "stop_type": "limit",
        "stopping_word": "",
        "tokens_cached": prompt_n + n_predict,
        "timings": {
            "cache_n": 0,
            "prompt_n": prompt_n,
            "prompt_ms": 1.0,
            "prompt_per_token_ms": 1.0 / max(prompt_n, 1),
            "prompt_per_second": prompt_n * 1000.0,
            "predicted_n": n_predict,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": 0.02,
            "predicted_per_second": n_predict * 1000.0 / predicted_ms,
        },
    }
    frames.append(_frame(json.dumps(final, separators=(",", ":"), ensure_ascii=False).encode()))
    frames.append(b"0\r\n\r\n")
    return frames


class _Body:
    """A stream's bytes in one buffer with frame offsets, so a burst is one slice."""

    def __init__(self, frames: list[bytes]) -> None:
        self.blob = b"".join(frames)
        self.offsets = [0]
        for f in frames:
            self.offsets.append(self.offsets[-1] + len(f))
        self.n_frames = len(frames)


class _State:
    def __init__(self, burst: int, rate: float) -> None:
        self.rate = rate
        self.burst = 1 if rate else burst  # paced: one token per stream per step, as an engine decodes
        self.active: dict[_Conn, None] = {}  # streams with frames left to write, in arrival order
        self.wake = asyncio.Event()
        self.open = 0
        self.requests = 0
        self.events = 0
        self.samples: list[tuple[float, int, int]] = []
        self.bodies: dict[tuple[int, int], _Body] = {}

    def body(self, n_predict: int, prompt_n: int) -> _Body:
        key = (n_predict, prompt_n)
        if key not in self.bodies:
            if len(self.bodies) > 64:
                self.bodies.clear()
            self.bodies[key] = _Body(stream_frames(n_predict, prompt_n))
        return self.bodies[key]

    def stats(self, reset: bool) -> dict[str, Any]:
        out = {
            "t": time.monotonic(),
            "cpu_s": time.process_time(),
            "requests": self.requests,
            "events": self.events,
            "open": self.open,
            "streaming": len(self.active),
            "samples": self.samples,
        }
        if reset:
            self.samples = []
        return out

    async def pump(self) -> None:
        """Round-robin over the open streams, ``burst`` frames per write, until none is left.

        Unpaced, rounds follow each other as fast as they go; paced (``rate`` tokens/s over all
        streams), a round of k events ends k/rate seconds after the previous one."""
        due = time.monotonic()
        while True:
            events = 0
            wrote = False
            for conn in list(self.active):
                if not conn.paused:
                    events += conn.write_burst(self.burst)
                    wrote = True
            self.events += events
            if not wrote:
                self.wake.clear()
                await self.wake.wait()
                due = time.monotonic()
            elif self.rate:
                due += events / self.rate
                late = time.monotonic() - due
                if late > 1.0:  # a long stall: do not make up for all of it in one burst
                    due += late
                await asyncio.sleep(max(0.0, -late))
            else:
                await asyncio.sleep(0)  # let new connections and requests in between rounds

    async def sample(self, every_s: float = 0.1) -> None:
        while True:
            self.samples.append((time.monotonic(), self.open, len(self.active)))
            if len(self.samples) > 100_000:
                del self.samples[:50_000]
            await asyncio.sleep(every_s)


class _Conn(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.paused = False
        self.body: _Body | None = None
        self.pos = 0
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.open -= 1
        self.state.active.pop(self, None)
        self.body = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.state.wake.set()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next_request()

    def _next_request(self) -> None:
        while self.body is None and self.transport is not None and not self.transport.is_closing():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return
            payload = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            self.close_after = headers.get("connection", "").lower() == "close"
            method, _, rest = lines[0].partition(" ")
            target = rest.rpartition(" ")[0]
            self._handle(method, target, payload)

    def _reply(self, status: str, ctype: str, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (status.encode(), ctype.encode(), len(payload), payload)
        )
        if self.close_after:
            self.transport.close()

    def _handle(self, method: str, target: str, payload: bytes) -> None:
        path, _, query = target.partition("?")
        if method == "GET" and path == "/stats":
            body = json.dumps(self.state.stats(reset="reset" in query)).encode()
            self._reply("200 OK", "application/json", body)
        elif method == "GET" and path == "/health":
            self._reply("200 OK", "application/json", b'{"status":"ok"}')
        elif method == "POST" and path == "/completion":
            try:
                req = json.loads(payload)
                n_predict = int(req.get("n_predict", 16))
                prompt = req.get("prompt", [])
                prompt_n = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
            except (ValueError, TypeError, AttributeError) as exc:
                self._reply("400 Bad Request", "text/plain", str(exc).encode())
                return
            assert self.transport is not None
            self.state.requests += 1
            self.transport.write(_HEAD + (b"Connection: close\r\n\r\n" if self.close_after else b"\r\n"))
            self.body, self.pos = self.state.body(n_predict, prompt_n), 0
            self.state.active[self] = None
            self.state.wake.set()
        else:
            self._reply("404 Not Found", "text/plain", b"not found")

    def write_burst(self, burst: int) -> int:
        """Write the next ``burst`` frames; returns how many partial events that was."""
        body, transport = self.body, self.transport
        assert body is not None and transport is not None
        i = self.pos
        j = min(i + burst, body.n_frames)
        if j >= body.n_frames - 2:
            j = body.n_frames  # the final event goes with the terminator
        transport.write(body.blob[body.offsets[i] : body.offsets[j]])
        self.pos = j
        n_predict = body.n_frames - 2  # the final event and the terminator are not tokens
        events = min(j, n_predict) - min(i, n_predict)
        if j < body.n_frames:
            return events
        self.state.active.pop(self, None)
        self.body = None
        if self.close_after:
            transport.close()
        else:
            self._next_request()
        return events


async def serve(host: str, port: int, burst: int, rate: float = 0.0, ready: Any = None) -> None:
    """Serve until cancelled; ``ready(port)`` is called once listening. ``rate``: tokens/s, 0 = unpaced."""
    state = _State(burst, rate)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(state), host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    tasks = [asyncio.create_task(state.pump()), asyncio.create_task(state.sample())]
    if ready is not None:
        ready(bound)
    try:
        async with server:
            await server.serve_forever()
    finally:
        for t in tasks:
            t.cancel()


def pin(core: int | None) -> str:
    """Pin this process to one core where the OS allows it; says what happened."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    try:
        os.sched_setaffinity(0, {core})
    except OSError as exc:
        return f"not pinned ({exc})"
    return f"core {core}"


def run_in_process(host: str, port: int, burst: int, rate: float, core: int | None, conn: Any) -> None:
    """Entry point for a child process: pin, serve, and send the bound port through ``conn``."""
    pinned = pin(core)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port, burst, rate, ready=lambda p: conn.send((p, pinned))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--burst", type=int, default=16, help="SSE events per write() (default 16)")
    ap.add_argument("--rate", type=float, default=0.0, help="tokens/s over all streams (0: unpaced)")
    ap.add_argument("--core", type=int, default=None, help="pin to this CPU core")
    args = ap.parse_args()
    pace = f"paced at {args.rate:g} tok/s" if args.rate else f"unpaced, burst {args.burst}"
    print(f"sse fixture: {pin(args.core)}, {pace}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.host,
                args.port,
                args.burst,
                args.rate,
                ready=lambda p: print(f"listening on {args.host}:{p}", flush=True),
            )
        )


if __name__ == "__main__":
    main()
