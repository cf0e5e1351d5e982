"""The CLI process without an engine: ``--help`` of ``roofline``, ``host`` and ``advise``,
``host --bandwidth`` (this machine's memory, measured for a second), and ``advise``'s one-line
errors. The same commands on the real 270M GGUF are in tests/e2e/test_explain.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok_json(*args: str) -> Any:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in lines[0]


@pytest.mark.parametrize("command", ["roofline", "host", "advise"])
def test_help(command: str) -> None:
    proc = cli(command, "--help")
    assert proc.returncode == 0
    assert "--json" in proc.stdout


def test_host_bandwidth_json() -> None:
    out = ok_json("host", "--bandwidth", "--seconds", "1", "--json")
    bw = out["bandwidth"]
    assert bw["read_gbs"] > 0 and bw["copy_gbs"] > 0 and bw["threads"] >= 1
    assert min(bw["sizes_bytes"]) >= out["llc_bytes"]
    assert len(out["known_devices"]) == 8
    one_line_error(cli("host", "--seconds", "0"), 2, "--seconds")


def test_advise_errors(tmp_path: Path) -> None:
    one_line_error(cli("advise", str(tmp_path / "none.json")), 2, "RESULTS")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    one_line_error(cli("advise", str(bad)), 2, "not readable JSON")
    bad.write_text("[]")
    one_line_error(cli("advise", str(bad)), 2, "not a run document")
