"""Tokens, not chunks, and two clocks that agree: the client's figures against the engine's own
``timings`` of the same requests, on the real llama-server with the real Gemma 3 270M.

- Multibyte output: prompted with Egyptian hieroglyphs, the 270M writes hieroglyphs, four byte
  tokens each; b11434 holds back a token whose text ends inside a UTF-8 character and sends it
  with the next, so one chunk carries four tokens. Both routes (``/completion`` and
  ``/v1/completions``) must count every token (counting chunks, or the ``tokens`` lists, finds 10
  of 40, and a client decode rate near a quarter of the engine's).
- Clock consistency: a native lane and an ``openai`` lane attached to a llama-server this test
  starts; each request's client decode rate and time to first token put beside the engine's
  ``timings`` of that request. Not a speed check: both clocks time the same tokens.

Tolerances, from these data (b11434, 270M, 1 thread, 256 in / 64 out, on a shared 2-core
machine, 12 requests): client / engine decode 0.9997-1.0001; the client's time to first token
exceeded the engine's ``prompt_ms`` by 3-39 ms (0.4-4.6% of it). The two decode clocks time the
same interval but for the delivery of its first and last chunk, so 2% per request allows a
delivery 30 ms late at either end of a 1.5 s stream, and the median must be within 0.5%.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.cli_helpers import lanes_file, run_cli

from lanebench.analysis import metrics as m
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines import openai
from lanebench.engines.base import PlanContext, Request, StreamReader
from lanebench.engines.llamacpp import engine as llamacpp
from lanebench.engines.llamacpp.engine import LlamaCpp
from lanebench.measure.client import stream_request
from lanebench.records.samples import RequestRecord

pytestmark = pytest.mark.e2e

HIEROGLYPHS = "".join(chr(c) for c in range(0x13000, 0x13012))
N_OUT = 40
PER_REQUEST = 0.02  # client / engine decode, each request
MEDIAN = 0.005  # and their median
TTFT_SHARE = 0.10  # at most this share of the client's wait for the first token lies outside prompt_ms


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path) -> Iterator[str]:
    """A llama-server started by the test, as a user's own running server would be."""
    lane = LaneSpec(name="external", model=gemma_270m, slots=1, threads=1)
    plan = LlamaCpp().plan(lane, PlanContext(job=JobSpec(n_in=256, n_out=64), server_bin=server_bin))
    with plan.engine.endpoint(plan, tmp_path_factory.mktemp("server") / "server.log", 180) as endpoint:
        yield endpoint.base_url


async def _multibyte(url: str, route: str) -> RequestRecord:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.post(f"{url}/tokenize", json={"content": HIEROGLYPHS}) as resp:
            ids = (await resp.json())["tokens"]
        reader: StreamReader
        if route == "native":
            req = Request("/completion", llamacpp.completion_body(ids, N_OUT, 42), len(ids), N_OUT)
            reader = llamacpp.LlamaReader()
        else:
            req = Request("/v1/completions", openai.completion_body("m", ids, N_OUT, 42), len(ids), N_OUT)
            reader = openai.OpenAIReader()
        return await stream_request(session, url, req, reader, kind="single", rep=0)


def _decode_ratio(r: RequestRecord) -> float:
    client, engine = m.client_decode_tps(r), m.engine_decode_tps(r)
    assert client is not None and engine is not None, r
    return client / engine


@pytest.mark.parametrize("route", ["native", "openai"])
def test_multibyte_output_counts_every_token(server: str, route: str) -> None:
    r = asyncio.run(_multibyte(server, route))
    assert r.ok, r.error
    assert r.timings["predicted_n"] == N_OUT
    assert r.stream_tokens == N_OUT
    # the output was multibyte: tokens were held back and sent together (else this proves nothing)
    assert r.stream_chunks <= N_OUT // 2, (r.stream_chunks, r.content_sha)
    assert r.token_count == "running"
    # the client's window starts at the first read, F tokens in; the engine's at the first token:
    # the client's misses F - 1 of the engine's N - 1 steps, which on a busy machine may run at
    # another pace (up to twice or half the rest's, this allows)
    assert r.first_tokens is not None
    window = (r.first_tokens - 1) / (N_OUT - 1)
    ratio = _decode_ratio(r)
    assert abs(ratio - 1) <= PER_REQUEST + window, (ratio, r.first_tokens)


@pytest.fixture(scope="module")
def both_lanes(
    tmp_path_factory: pytest.TempPathFactory, server: str, server_bin: Path, gemma_270m: Path
) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("clocks")
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
name = "openai"
engine = "openai"
url = "{server}/v1"
""",
    )
    job = (
        "--n-in",
        "256",
        "--n-out",
        "64",
        "--reps",
        "3",
        "--warmup",
        "1",
        "--aggregate",
        "0",
        "--remeasure-busy",
        "0",
    )
    proc, left = run_cli(tmp, "run", str(lanes), *job, "--json", str(tmp / "out.json"), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert left == []
    return {lane["name"]: lane for lane in json.loads((tmp / "out.json").read_text())["lanes"]}


def _singles(lane: dict[str, Any]) -> list[RequestRecord]:
    fields = RequestRecord.__dataclass_fields__
    return [
        RequestRecord(**{k: v for k, v in s.items() if k in fields})
        for s in lane["samples"]
        if s["kind"] == "single" and s["ok"]
    ]


@pytest.mark.parametrize("name", ["native", "openai"])
def test_client_clock_agrees_with_the_engines_timings(
    both_lanes: dict[str, dict[str, Any]], name: str
) -> None:
    lane = both_lanes[name]
    assert lane["status"] == "ok", lane["flags"]
    singles = _singles(lane)
    assert len(singles) == 3
    ratios = [_decode_ratio(r) for r in singles]
    assert all(abs(x - 1) <= PER_REQUEST for x in ratios), ratios
    assert abs(statistics.median(ratios) - 1) <= MEDIAN, ratios
    for r in singles:  # the client cannot see a first token before the engine made it
        assert r.ttft_s is not None and 1000 * r.ttft_s >= float(r.timings["prompt_ms"]), r
    outside = [1 - float(r.timings["prompt_ms"]) / (1000 * r.ttft_s) for r in singles if r.ttft_s]
    assert statistics.median(outside) <= TTFT_SHARE, outside


def test_openai_lane_sent_cache_prompt_false_and_the_server_honoured_it(
    both_lanes: dict[str, dict[str, Any]],
) -> None:
    lane = both_lanes["openai"]
    assert lane["request"]["body"]["cache_prompt"] is False
    assert lane["request"]["notes"] == []  # llama-server took every extra field
    singles = _singles(lane)
    assert all(r.timings["cache_n"] == 0 and r.timings["prompt_n"] == 256 for r in singles)
    assert {r.token_count for r in singles} == {"running"}  # timings_per_token was honoured
