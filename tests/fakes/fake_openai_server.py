"""FAKE OpenAI-compatible server, for fault injection only (never for figures).

``python fake_openai_server.py PORT MODE`` serves 127.0.0.1:PORT:
- ``401``: every request answers 401, as a server that wants an API key;
- ``close-mid-stream``: ``/v1/models`` answers, and every completion streams three chunks and
  then drops the connection without a final chunk (the server stays up).
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web


def app_for(mode: str) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        if mode == "401":
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def completions(request: web.Request) -> web.StreamResponse:
        if mode == "401":
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for _ in range(3):
            chunk = {"choices": [{"text": "x", "index": 0, "finish_reason": None}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(0.01)
        assert request.transport is not None
        request.transport.close()  # the connection drops mid-stream
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    return app


if __name__ == "__main__":
    port, mode = int(sys.argv[1]), sys.argv[2]
    web.run_app(app_for(mode), host="127.0.0.1", port=port, print=None)
