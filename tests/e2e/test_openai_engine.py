"""``engine = "openai"`` against a real llama-server.

The same llama-server build and model measured two ways: a lane lanebench starts itself
(``llama.cpp``), and a lane that reaches a running llama-server as any OpenAI-compatible server
(``openai``). Both views must agree on decode within noise. The faults (wrong URL, 401, a stream
that drops mid-reply) need no engine: tests/integration/test_openai_faults.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cli_helpers import lanes_file, run_cli

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import PlanContext
from lanebench.engines.llamacpp.engine import LlamaCpp

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
