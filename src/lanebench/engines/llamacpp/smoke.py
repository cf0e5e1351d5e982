"""Does this llama-server run here? Load a model, prefill a few tokens, decode a few (seconds).

Setup runs it after each build to pick a configuration that works on this machine; ``doctor``
runs it so a broken build is found in seconds, not after a run. A death by a signal is named
with its cause (``engines.exitcause``).
"""

from __future__ import annotations

import http.client
import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lanebench.engines.llamacpp.dialect import probe
from lanebench.errors import LanebenchError, LaneFailed
from lanebench.server.exitcause import signal_name
from lanebench.server.process import ServerProcess

SMOKE_PROMPT = "The quick brown fox jumps over the lazy dog. " * 4
SMOKE_N_PREDICT = 16
_SYSTEM_INFO = re.compile(r"system_info:\s*(.*)")


@dataclass(slots=True)
class SmokeResult:
    """What one smoke test saw; ``message`` is one line for people."""

    ok: bool
    binary: str
    message: str
    load_s: float | None = None
    prompt_n: int | None = None
    prefill_tps: float | None = None
    decode_tps: float | None = None
    system_info: str | None = None
    signal: str | None = None
    log_tail: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def system_info(log: str) -> str | None:
    """llama.cpp's ``system_info`` line (threads and the CPU features the build uses)."""
    found = _SYSTEM_INFO.findall(log)
    return found[-1].strip() if found else None


def cpu_features(info: str | None) -> list[str]:
    """Features switched on in a ``system_info`` line: ``AVX2 = 1`` → ``AVX2``."""
    return re.findall(r"\b([A-Z][A-Z0-9_]*) = 1\b", info or "")


def _complete(port: int, timeout_s: float) -> dict[str, Any]:
    body = json.dumps(
        {"prompt": SMOKE_PROMPT, "n_predict": SMOKE_N_PREDICT, "ignore_eos": True, "temperature": 0.0}
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        if resp.status != 200:
            raise OSError(f"/completion answered {resp.status}: {str(data)[:200]}")
        return data if isinstance(data, dict) else {}
    finally:
        conn.close()


def smoke_test(
    binary: Path, model: Path, *, threads: int | None = None, timeout_s: float = 180.0
) -> SmokeResult:
    """Start ``binary`` on ``model`` (127.0.0.1, small context), prefill ~40 tokens, decode 16."""
    try:
        dialect = probe(binary)
    except LanebenchError as exc:
        return SmokeResult(ok=False, binary=str(binary), message=str(exc))
    # system_info is printed at trace level (4) in current builds
    verbose = ["-lv", "4"] if dialect.has("-lv") else []
    log_dir = Path(tempfile.mkdtemp(prefix="lanebench-smoke-"))
    log_path = log_dir / "llama-server.log"

    def argv(port: int) -> list[str]:
        extra = [*verbose, "-t", str(threads)] if threads else verbose
        return [str(binary), "-m", str(model), "-c", "512", "-np", "1", *extra,
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip

    server = ServerProcess(argv, log_path, label="smoke test", load_timeout_s=timeout_s)
    try:
        with server:
            try:
                data = _complete(server.port, timeout_s)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                server.check_alive(grace_s=5.0)  # names the signal if it died mid-request
                raise LaneFailed(f"smoke test: /completion failed: {exc}", server.log_tail()) from None
            t = data.get("timings") or {}
            result = SmokeResult(
                ok=bool(t.get("predicted_n")),
                binary=str(binary),
                message="",
                load_s=server.load_s,
                prompt_n=t.get("prompt_n"),
                prefill_tps=t.get("prompt_per_second"),
                decode_tps=t.get("predicted_per_second"),
            )
    except LaneFailed as exc:
        result = SmokeResult(
            ok=False,
            binary=str(binary),
            message=str(exc).removeprefix("smoke test: "),
            signal=signal_name(server.died_with) if server.died_with is not None else None,
            log_tail=exc.log_tail,
        )
    log = log_path.read_text("utf-8", "replace") if log_path.exists() else ""
    result.system_info = system_info(log)
    if result.ok:
        result.message = (
            f"loaded in {result.load_s:.1f} s, prefill {result.prefill_tps or 0:.0f} tok/s, "
            f"decode {result.decode_tps or 0:.1f} tok/s"
        )
    elif not result.message:
        result.message = "smoke test: the server answered but generated no tokens"
    return result
