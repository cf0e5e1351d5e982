"""An ``openai`` lane against a FAKE server whose token rate is known: tokens, not chunks.

The fake (tests/fakes/fake_openai_server.py) makes token i at i / RATE seconds and sends K
tokens to a chunk, as speculative decoding or a proxy does. A client that counts chunks as tokens
reports RATE / K; lanebench must report RATE. Integration against an in-repo fake, not e2e: no
engine runs here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cli_helpers import FAKES, lanes_file, run_cli

from lanebench.server.process import free_port, health_status

RATE = 200.0  # tokens per second the fake makes
N_OUT = 120
JOB = ("--n-in", "16", "--n-out", str(N_OUT), "--reps", "5", "--warmup", "1", "--aggregate", "0")
# Only the first and the last read's arrival times enter the rate (the fake keeps an absolute
# schedule, so a late chunk does not delay the next): a read late by d seconds moves it by
# d / 0.6 s. Seen on a shared 2-core machine: medians 199.0-199.9 (20 runs); 3% allows a read
# 18 ms late. Counting chunks as tokens is off by a factor K (3 or 4 here).
TOLERANCE = 0.03


@pytest.fixture
def fake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, log = free_port(), tmp_path / "bodies.jsonl"
    argv = [sys.executable, str(FAKES / "fake_openai_server.py"), str(port), "tokens", "--rate", str(RATE)]
    proc = subprocess.Popen(
        [*argv, *request.param, "--log", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while health_status(port, 0.5, "/v1/models") is None:
            assert proc.poll() is None and time.monotonic() < deadline, "fake server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.kill()
        proc.wait()


def _run(tmp_path: Path, url: str) -> dict[str, Any]:
    lanes = lanes_file(tmp_path, f'[[lane]]\nname = "fake"\nengine = "openai"\nurl = "{url}/v1"\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *JOB, "--json", str(tmp_path / "out.json"))
    assert proc.returncode == 0, proc.stderr
    assert left == []
    (lane,) = json.loads((tmp_path / "out.json").read_text())["lanes"]
    return dict(lane)


def _decode(lane: dict[str, Any]) -> float:
    return float(lane["summary"]["decode_client_tps"]["median"])


@pytest.mark.parametrize(
    ("fake", "per_chunk", "counted_by"),
    [
        (["--per-chunk", "4"], 4, "running"),  # continuous usage: the server's running count
        (["--per-chunk", "3", "--strict"], 3, "chunks"),  # only the final usage says how many
    ],
    indirect=["fake"],
    ids=["running-count", "total-only"],
)
def test_openai_lane_reports_the_known_token_rate(
    tmp_path: Path, fake: tuple[str, Path], per_chunk: int, counted_by: str
) -> None:
    url, _ = fake
    lane = _run(tmp_path, url)
    assert lane["status"] != "failed", lane["error"]
    assert abs(_decode(lane) / RATE - 1) <= TOLERANCE, (_decode(lane), RATE, per_chunk)
    singles = [s for s in lane["samples"] if s["kind"] == "single"]
    assert {s["token_count"] for s in singles} == {counted_by}
    assert {s["stream_chunks"] for s in singles} == {-(-N_OUT // per_chunk)}
    # the flag says chunks were not tokens and which count the figure used
    assert any("chunks" in f and "client decode counts" in f for f in lane["flags"]), lane["flags"]


@pytest.mark.parametrize("fake", [[]], indirect=True)
def test_openai_lane_sends_cache_prompt_false(tmp_path: Path, fake: tuple[str, Path]) -> None:
    url, log = fake
    lane = _run(tmp_path, url)
    bodies = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(b.get("cache_prompt") is False and b["ignore_eos"] is True for b in bodies)
    assert len(bodies) == 7  # the probe, one warm-up, five measured requests
    assert lane["request"]["body"]["cache_prompt"] is False  # and the lane records what it sent
    assert lane["request"]["notes"] == []


@pytest.mark.parametrize("fake", [["--strict"]], indirect=True)
def test_a_strict_server_gets_the_job_without_extra_fields(tmp_path: Path, fake: tuple[str, Path]) -> None:
    url, log = fake
    lane = _run(tmp_path, url)
    assert lane["status"] == "flagged", lane["error"]
    measured = [json.loads(line) for line in log.read_text().splitlines()][2:]  # after both probes
    assert measured and all("cache_prompt" not in b for b in measured)
    assert "cache_prompt" not in lane["request"]["body"]
    (note,) = lane["request"]["notes"]
    assert "refused" in note and "HTTP 400" in note and "cache_prompt" in note
    assert note in lane["flags"]
