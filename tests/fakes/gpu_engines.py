"""FAKES shared by the unit tests of the engines lanebench cannot run here (vLLM, SGLang, Ollama).

- ``fake_cli``: a shell script standing in for the engine's executable; it prints the recorded
  ``--help`` text (``tests/fixtures/<engine>/``) for the arguments it expects, so the engine's
  help probe runs its real subprocess path, and optionally logs every call;
- ``feed``: a recorded response body fed line by line through lanebench's own line parser;
- ``serve``: an in-process aiohttp stand-in serving recorded bodies on a free local port.

Never a source of figures: they replay what the fixtures' READMEs say was recorded.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from lanebench.engines.base import StreamReader
from lanebench.measure.client import parse_sse_line

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fake_cli(path: Path, cases: Mapping[str, str], *, match: str = "$*", log: Path | None = None) -> Path:
    """Write an executable ``/bin/sh`` script at ``path``: ``case {match} in`` each pattern of
    ``cases`` runs its shell command; anything else prints "unexpected" and exits 2. With ``log``
    every call's arguments are appended to that file first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/sh"]
    if log is not None:
        lines.append(f"echo \"$*\" >> '{log}'")
    lines.append(f'case "{match}" in')
    lines += [f"  {pattern}) {command} ;;" for pattern, command in cases.items()]
    lines += ['  *) echo "unexpected: $*" >&2; exit 2 ;;', "esac", ""]
    path.write_text("\n".join(lines))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def feed(reader: StreamReader, path: Path) -> tuple[int, str]:
    """Feed a recorded body (SSE or NDJSON) line by line through lanebench's own line parser;
    (tokens, text) the reader counted."""
    tokens, text = 0, ""
    for raw in path.read_bytes().splitlines(keepends=True):
        chunk = parse_sse_line(raw)
        if chunk is not None:
            n, t = reader.feed(chunk)
            tokens, text = tokens + n, text + t
    return tokens, text


def serve(routes: list[web.RouteDef], body: Callable[[str], Awaitable[Any]]) -> Any:
    """Serve ``routes`` on 127.0.0.1 (a free port) while ``body(base_url)`` runs; its result."""

    async def main() -> Any:
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            return await body(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    return asyncio.run(main())
