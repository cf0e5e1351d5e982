"""``engine = "openai"`` lanes' faults against a FAKE OpenAI-compatible server: wrong URL, 401,
a stream that drops mid-reply; each must fail only its lane, in one line. The same engine against a
real llama-server is in tests/e2e/test_openai_engine.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli_helpers import FAKES, lanes_file, run_cli

from lanebench.server.process import free_port, health_status

JOB = ("--n-in", "128", "--n-out", "48", "--reps", "3", "--warmup", "1", "--aggregate", "0")
JOB += ("--remeasure-busy", "0")


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKES / "fake_openai_server.py"), str(port), request.param],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while health_status(port, 0.5, "/v1/models") is None:
            assert proc.poll() is None and time.monotonic() < deadline, "fake server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("fake", "expected"),
    [
        ("401", r"HTTP 401 from http://127\.0\.0\.1:"),
        # the drop shows as an incomplete chunked body or as a stream without its last chunk
        ("close-mid-stream", r"every measured request failed: (ClientPayloadError|stream ended before)"),
    ],
    indirect=["fake"],
)
def test_openai_faults_fail_only_their_lane(tmp_path: Path, fake: str, expected: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    lanes = lanes_file(
        tmp_path,
        f"""
[[lane]]
name = "fault"
engine = "openai"
url = "{fake}"

[[lane]]
name = "nowhere"
engine = "openai"
url = "{nowhere}"
""",
    )
    proc, left = run_cli(tmp_path, "run", str(lanes), *JOB, "--json", str(tmp_path / "out.json"))
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert left == []
    doc = json.loads((tmp_path / "out.json").read_text())
    lanes_by_name = {lane["name"]: lane for lane in doc["lanes"]}
    assert lanes_by_name["fault"]["status"] == "failed"
    assert re.search(expected, lanes_by_name["fault"]["error"]), lanes_by_name["fault"]["error"]
    assert lanes_by_name["nowhere"]["status"] == "failed"
    assert f"cannot reach {nowhere}" in lanes_by_name["nowhere"]["error"]
    failed_lines = [line for line in proc.stderr.splitlines() if ": failed: " in line]
    assert len(failed_lines) == 2, proc.stderr
