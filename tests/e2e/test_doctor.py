"""End to end: `lanebench doctor` smoke-tests the real llama-server, and names a broken build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli_helpers import DIES_BY_SIGNAL

pytestmark = pytest.mark.e2e


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_doctor_smoke_tests_the_real_server(server_bin: Path, gemma_270m: Path) -> None:
    proc = doctor({"LANEBENCH_SERVER_BIN": str(server_bin)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    smoke = report["smoke"]
    assert smoke["ok"] is True and smoke["binary"] == str(server_bin)
    assert smoke["prompt_n"] > 10 and smoke["decode_tps"] > 0 and smoke["load_s"] > 0
    assert "CPU :" in smoke["system_info"]  # llama.cpp's system_info line, read from the log
    items = {i["what"]: i for i in report["items"]}
    assert items["smoke test"]["ok"] and "decode" in items["smoke test"]["detail"]
    assert (
        "AVX" in items["CPU features the build uses"]["detail"]
        or "NEON" in items["CPU features the build uses"]["detail"]
    )


def test_doctor_names_a_build_that_dies_by_sigill(gemma_270m: Path) -> None:
    proc = doctor({"LANEBENCH_SERVER_BIN": str(DIES_BY_SIGNAL), "FAKE_SIGNAL": "SIGILL"})
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    smoke = {i["what"]: i for i in report["items"]}["smoke test"]
    assert smoke["ok"] is False and report["smoke"]["signal"] == "SIGILL"
    assert "killed by SIGILL (illegal instruction) while loading" in smoke["detail"]
    assert "lanebench install-server --rebuild" in smoke["fix"]
