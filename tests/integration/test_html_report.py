"""The HTML report in a real headless Chromium: the page loads without console errors, every
image renders, no stored string became markup. A screenshot is kept under artifacts/.

Skipped locally without Chromium (apt-get install chromium); required in CI.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import need
from tests.unit.test_report_seed import SEED_ROWS, seed_lane, store_run

from lanebench.store import open_store

HOSTILE = '<img src=x onerror=console.error("xss")> & "q" <script>console.error(1)</script>'
ROOT = Path(__file__).resolve().parents[2]
CHECK_JS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
      w: i.naturalWidth, h: i.naturalHeight})),
  scripts: document.scripts.length,
  tables: document.querySelectorAll('table').length,
  title: document.title,
})"""


def artifacts_dir() -> Path:
    d = Path(os.environ.get("LANEBENCH_ARTIFACTS", ROOT / "artifacts")) / "html-report"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[str]:
    """A headless Chromium with remote debugging; yields its HTTP debugging base URL."""
    exe = _chromium()
    if exe is None:
        need("chromium not found (apt-get install chromium)")
    assert exe is not None
    profile = tempfile.mkdtemp(prefix="lanebench-chromium-")
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    argv += [
        "--window-size=1400,1000",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "about:blank",
    ]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        base = _devtools_base(proc)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_base(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if m := re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line):
            return f"http://{m[1]}"
    raise AssertionError("chromium did not start its DevTools endpoint:\n" + "".join(seen[-20:]))


async def _inspect(base: str, url: str, screenshot: Path | None) -> dict[str, Any]:
    """Load ``url`` in a new tab; collect console errors, exceptions, failed loads, image facts."""
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{base}/json/new?about:blank") as r:
            target = await r.json()
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = _Cdp(ws)
            for method in ("Runtime.enable", "Log.enable", "Page.enable"):
                await cdp.call(method)
            await cdp.call("Page.navigate", url=url)
            await cdp.wait_event("Page.loadEventFired", timeout_s=60)
            await asyncio.sleep(0.5)  # late console messages
            facts = json.loads((await cdp.call("Runtime.evaluate", expression=CHECK_JS))["result"]["value"])
            if screenshot is not None:
                shot = await cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            facts["errors"] = cdp.errors
        async with http.get(f"{base}/json/close/{target['id']}"):
            pass
    return facts


class _Cdp:
    """A minimal Chrome DevTools Protocol session over one websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id, self.events, self.errors = ws, 0, [], []  # type: ignore[var-annotated]

    def _note(self, msg: dict[str, Any]) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append(f"console.{p['type']}: {p.get('args')}")
        elif method == "Runtime.exceptionThrown":
            self.errors.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        if method:
            self.events.append(method)

    async def _recv(self, timeout_s: float) -> dict[str, Any]:
        msg = await self.ws.receive_json(timeout=timeout_s)
        self._note(msg)
        return msg  # type: ignore[no-any-return]

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self._recv(60)
            if msg.get("id") == self.next_id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})  # type: ignore[no-any-return]

    async def wait_event(self, method: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while method not in self.events:
            await self._recv(max(0.1, deadline - time.monotonic()))


def inspect(base: str, page: Path, screenshot: Path | None = None) -> dict[str, Any]:
    return asyncio.run(_inspect(base, page.resolve().as_uri(), screenshot))


def test_html_report_loads_clean_and_every_plot_renders(browser: str, tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    store = open_store(db)
    lanes = [seed_lane(*row) for row in SEED_ROWS]
    lanes[0].name = HOSTILE
    store_run(store, "run-01", [seed_lane(*SEED_ROWS[1])], when="2026-06-01T00:00:00+00:00")
    store_run(store, "run-02", lanes, when="2026-06-02T00:00:00+00:00")
    page = artifacts_dir() / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", "report", "run-02", "--db", db, "-o", str(page)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    facts = inspect(browser, page, artifacts_dir() / "report.png")
    assert facts["errors"] == []
    assert facts["scripts"] == 0  # the hostile lane name stayed text
    assert facts["tables"] >= 5 and facts["title"].startswith("lanebench report")
    assert len(facts["images"]) == 4
    for img in facts["images"]:
        assert img["complete"] and img["w"] > 200 and img["h"] > 200, img
    assert (artifacts_dir() / "report.png").stat().st_size > 10_000


def test_the_browser_check_catches_a_broken_image_and_a_console_error(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        '<title>t</title></head><body><img alt="bad" src="data:image/png;base64,AAAA">'
        '<script>console.error("boom")</script></body></html>'
    )
    facts = inspect(browser, page)
    assert any("boom" in e for e in facts["errors"])
    assert facts["images"][0]["w"] == 0
