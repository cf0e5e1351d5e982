"""``engine = "openai"`` against a real llama-server, and its faults.

The same llama-server build and model measured two ways: a lane lanebench starts itself
(``llama.cpp``), and a lane that reaches a running llama-server as any OpenAI-compatible server
(``openai``). Both views must agree on decode within noise. The faults (wrong URL, 401, a stream
that drops mid-reply) use a FAKE server and must each fail only their lane, in one line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cli_helpers import FAKES, lanes_file, run_cli

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import PlanContext
from lanebench.engines.llamacpp.engine import LlamaCpp
from lanebench.server.process import free_port, health_status

JOB = (
    "--n-in",
    "128",
    "--n-out",
    "48",
    "--reps",
    "3",
    "--warmup",
    "1",
    "--aggregate",
    "0",
    "--remeasure-busy",
    "0",
)


@pytest.fixture(scope="module")
def running_server(
    tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path
) -> Iterator[str]:
    """A llama-server started here, as a user's own running server would be."""
    lane = LaneSpec(name="external", model=gemma_270m, slots=1, threads=1)
    plan = LlamaCpp().plan(lane, PlanContext(job=JobSpec(n_in=128, n_out=48), server_bin=server_bin))
    log = tmp_path_factory.mktemp("external") / "server.log"
    with plan.engine.endpoint(plan, log, 180) as endpoint:
        yield endpoint.base_url


@pytest.fixture(scope="module")
def both_views(
    tmp_path_factory: pytest.TempPathFactory, running_server: str, server_bin: Path, gemma_270m: Path
) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("views")
    lanes = lanes_file(
        tmp,
        f"""
[[lane]]
name = "native"
model = "{gemma_270m}"
server_bin = "{server_bin}"
slots = 1
threads = 1

[[lane]]
name = "via-openai"
engine = "openai"
url = "{running_server}/v1"
""",
    )
    proc, left = run_cli(tmp, "run", str(lanes), *JOB, "--json", str(tmp / "out.json"), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert left == []
    doc = json.loads((tmp / "out.json").read_text())
    return {lane["name"]: lane for lane in doc["lanes"]}


def _median(lane: dict[str, Any], key: str) -> float:
    return float(lane["summary"][key]["median"])


@pytest.mark.e2e
def test_openai_lane_reports_client_and_engine_figures(both_views: dict[str, dict[str, Any]]) -> None:
    lane = both_views["via-openai"]
    assert lane["status"] == "ok", lane["flags"]
    assert lane["load_s"] is None  # attached: nothing was loaded
    for key in ("prefill_client_tps", "decode_client_tps", "decode_tps", "prefill_tps"):
        assert _median(lane, key) > 0, key
    singles = [s for s in lane["samples"] if s["kind"] == "single"]
    assert len(singles) == 3
    # tokenised through the server's own /tokenize: the engine saw exactly n_in tokens
    assert {s["timings"]["prompt_n"] for s in singles} == {128}
    assert {s["timings"]["predicted_n"] for s in singles} == {48}


@pytest.mark.e2e
def test_the_two_views_of_one_build_agree_on_decode(both_views: dict[str, dict[str, Any]]) -> None:
    native, remote = both_views["native"], both_views["via-openai"]
    assert native["status"] == "ok", native["flags"]
    a, b = _median(native, "decode_tps"), _median(remote, "decode_tps")
    spread = max(
        (lane["summary"]["decode_tps"]["max"] - lane["summary"]["decode_tps"]["min"])
        / _median(lane, "decode_tps")
        for lane in (native, remote)
    )
    # the same engine code decodes both; only the HTTP route differs. Allow the runs' own
    # spread plus a margin for a shared machine.
    assert abs(b / a - 1) <= max(0.25, 2 * spread), (a, b, spread)


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


@pytest.mark.e2e
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
