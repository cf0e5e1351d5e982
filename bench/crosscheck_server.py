"""The script's own llama-server and client for ``bench/crosscheck.py`` (I/O only).

A server in its own process group on 127.0.0.1, ``/health`` polled, killed on exit; one
streamed ``/completion`` per request on ``http.client``, each SSE line stamped as it arrives
(``crosscheck_core.read_stream`` turns the lines into figures); prompts from Python's own
standard-library sources, tokenized by the server, a fresh slice for every request.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from crosscheck_core import (
    Point,
    Settings,
    StreamResult,
    completion_body,
    prompt_slice,
    read_stream,
    sse_events,
)

T0 = time.monotonic()


class CheckFailed(Exception):
    """Something the report cannot go on without (one line, exit 1)."""


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The script's own llama-server: its own process group, /health polled, killed on exit."""

    def __init__(self, argv: list[str], log: Path, timeout_s: float) -> None:
        self.argv, self.log, self.timeout_s = argv, log, timeout_s
        self.port = int(argv[argv.index("--port") + 1])
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                self.__exit__()
                raise CheckFailed(
                    f"llama-server exited {self.proc.returncode} while loading: {' / '.join(tail)}"
                )
            if self._healthy():
                return self
            time.sleep(0.2)
        self.__exit__()
        raise CheckFailed(f"llama-server did not listen within {self.timeout_s:.0f} s (log: {self.log})")

    def _healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def __exit__(self, *_exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def post(self, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            out: dict[str, Any] = json.loads(data) if resp.status == 200 else {}
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise CheckFailed(f"POST {path}: {exc!r} (log: {self.log})") from None
        if resp.status != 200:
            raise CheckFailed(f"POST {path}: HTTP {resp.status}: {data[:200]!r}")
        return out

    def stream(self, body: dict[str, Any], timeout_s: float) -> StreamResult:
        """One streamed completion timed by this script: the clock starts before the request
        is sent on an open connection, each line is stamped as it arrives. A failure is data."""
        try:
            return self._stream(body, timeout_s)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return StreamResult(ok=False, error=f"{exc!r}"[:200])

    def _stream(self, body: dict[str, Any], timeout_s: float) -> StreamResult:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        payload = json.dumps(body).encode()
        conn.connect()
        t0 = time.perf_counter()
        conn.request("POST", "/completion", payload, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return StreamResult(ok=False, error=f"HTTP {resp.status}: {resp.read()[:200]!r}")
        lines = []
        while line := resp.readline():
            lines.append((time.perf_counter() - t0, line))
        conn.close()
        return read_stream(sse_events(lines))


def corpus_ids(server: Server, tokens: int, timeout_s: float) -> list[int]:
    """At least ``tokens`` token ids of Python's standard-library sources (not lanebench's corpus)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts, chars = [], 0
    for path in sorted(stdlib.glob("*.py")):
        texts.append(path.read_text(errors="replace"))
        chars += len(texts[-1])
        if chars >= 6 * tokens:
            break
    ids = server.post("/tokenize", {"content": "\n".join(texts)}, timeout_s).get("tokens") or []
    if len(ids) < tokens:
        say(f"note: the text gave {len(ids)} tokens, fewer than {tokens}: prompts wrap around it")
    return [int(i) for i in ids]


class Requests:
    """Every request of the script gets a slice of the text no other request got."""

    def __init__(self, ids: list[int]) -> None:
        self.ids, self.k = ids, 0

    def run(self, server: Server, p: Point, s: Settings, timeout_s: float) -> list[StreamResult]:
        """``warmup`` requests (dropped), then ``reps`` measured ones."""
        out = []
        for i in range(s.warmup + s.reps):
            self.k += 1
            body = completion_body(prompt_slice(self.ids, self.k, p.n_in), p.n_out)
            result = server.stream(body, timeout_s)
            if i >= s.warmup:
                out.append(result)
        return out
