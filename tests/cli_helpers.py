"""Running the lanebench CLI in tests: tagged processes, one-line errors, lanes files."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.fakes.proctrack import (
    env_with_tag,
    lanebench_argv,
    new_tag,
    tagged,
)

FAKES = Path(__file__).resolve().parent / "fakes"
NOT_LLAMA = FAKES / "not_llama_server.sh"
EXITS_ON_START = FAKES / "fake_llama_server_exits_on_start.sh"
DIES_BY_SIGNAL = FAKES / "fake_llama_server_signal.py"  # $FAKE_SIGNAL while loading
TINY = ("--n-in", "64", "--n-out", "8", "--reps", "1", "--aggregate", "0")
# Refusals before any server starts need no real engine: a fake that answers --help like b11434.
FAKE_BIN = ("--server-bin", str(EXITS_ON_START))


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run ``lanebench ARGS``; return the result and the tagged processes it left alive."""
    tag = new_tag()
    full_env = env_with_tag(tag)
    full_env.pop("LANEBENCH_SERVER_BIN", None)
    full_env.update(env or {})
    proc = subprocess.run(
        lanebench_argv(*args, "--no-db", "--out-dir", str(tmp_path / "logs")),
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    left = tagged(tag)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return proc, left


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lanebench: error: ")
    return lines[0].removeprefix("lanebench: error: ")


def lanes_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lanes.toml"
    path.write_text(body, encoding="utf-8")
    return path
