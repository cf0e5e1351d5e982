"""FAKE OpenAI-compatible server, for fault injection and known-rate checks only (never for figures).

``python fake_openai_server.py PORT MODE [options]`` serves 127.0.0.1:PORT:
- ``401``: every request answers 401, as a server that wants an API key;
- ``close-mid-stream``: ``/v1/models`` answers, and every completion streams three chunks and
  then drops the connection without a final chunk (the server stays up);
- ``tokens``: every completion streams ``max_tokens`` tokens generated at a known rate
  (``--rate`` tokens per second, the first token at once, token i at i / rate seconds), sent
  ``--per-chunk`` K to a chunk as the chunk's last token is made (as speculative decoding or a
  proxy sends them), then a final chunk with ``usage``. The chunks say nothing of how many tokens
  they carry unless the request asks for ``stream_options.continuous_usage_stats``.
  ``--strict`` refuses, as api.openai.com does, any field outside the OpenAI API with 400;
  ``--log PATH`` appends each completion request's body (prompt left out) as a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

OPENAI_FIELDS = {"model", "prompt", "max_tokens", "temperature", "seed", "stream", "stream_options"}


def _sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _refused(body: dict[str, Any]) -> str | None:
    extra = sorted(set(body) - OPENAI_FIELDS)
    extra += [f"stream_options.{k}" for k in (body.get("stream_options") or {}) if k != "include_usage"]
    return f"Unrecognized request argument supplied: {', '.join(extra)}" if extra else None


async def _stream_tokens(
    request: web.Request, body: dict[str, Any], args: argparse.Namespace
) -> web.StreamResponse:
    n, k, rate = int(body.get("max_tokens") or 16), args.per_chunk, args.rate
    running = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    start = time.perf_counter()
    for first in range(0, n, k):
        last = min(first + k, n) - 1  # the chunk leaves when its last token is made
        await asyncio.sleep(max(0.0, start + last / rate - time.perf_counter()))
        chunk: dict[str, Any] = {"choices": [{"text": " tok" * (last - first + 1), "index": 0}]}
        if running:
            chunk["usage"] = {"prompt_tokens": 8, "completion_tokens": last + 1}
        await resp.write(_sse(chunk))
    usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": n + 8}
    await resp.write(_sse({"choices": [{"text": "", "index": 0, "finish_reason": "length"}], "usage": usage}))
    await resp.write(b"data: [DONE]\n\n")
    return resp


def app_for(mode: str, args: argparse.Namespace) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        if mode == "401":
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def completions(request: web.Request) -> web.StreamResponse:
        if mode == "401":
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        body = await request.json()
        if args.log:
            with Path(args.log).open("a") as f:
                f.write(json.dumps({k: v for k, v in body.items() if k != "prompt"}) + "\n")
        if mode == "tokens":
            why = _refused(body) if args.strict else None
            if why:
                return web.json_response(
                    {"error": {"message": why, "type": "invalid_request_error"}}, status=400
                )
            return await _stream_tokens(request, body, args)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for _ in range(3):
            await resp.write(_sse({"choices": [{"text": "x", "index": 0, "finish_reason": None}]}))
            await asyncio.sleep(0.01)
        assert request.transport is not None
        request.transport.close()  # the connection drops mid-stream
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("mode", choices=["401", "close-mid-stream", "tokens"])
    parser.add_argument("--rate", type=float, default=200.0, help="tokens per second")
    parser.add_argument("--per-chunk", type=int, default=1, help="tokens per chunk")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--log", default=None)
    a = parser.parse_args()
    web.run_app(app_for(a.mode, a), host="127.0.0.1", port=a.port, print=None)
