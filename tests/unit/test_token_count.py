"""Tokens, not chunks: how each reader counts a stream's tokens, and what client decode makes of it.

The llama-server streams under tests/fixtures/llamaserver/ were recorded from the real b11434 with
the real Gemma 3 270M (see the README there): Egyptian hieroglyphs, 4 byte tokens each, so the
server holds three tokens of every four back and sends 3 chunks for 12 tokens.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lanebench.analysis import metrics as m
from lanebench.engines.base import Request, StreamReader
from lanebench.engines.llamacpp.engine import LlamaReader, chunk_tokens
from lanebench.engines.ollama import OllamaReader
from lanebench.engines.openai import EXTRA_FIELDS, OpenAIReader, completion_body
from lanebench.measure.client import parse_sse_line, stream_request
from lanebench.measure.job import token_count_flags
from lanebench.records.samples import RequestRecord, TokenCount

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NATIVE = FIXTURES / "llamaserver" / "b11434-270m-hieroglyphs-completion.sse"
OAI = FIXTURES / "llamaserver" / "b11434-270m-hieroglyphs-v1-completions.sse"
OAI_TPT = FIXTURES / "llamaserver" / "b11434-270m-hieroglyphs-v1-completions-tpt.sse"


def chunks(path: Path) -> list[dict[str, Any]]:
    return [c for line in path.read_bytes().splitlines() if (c := parse_sse_line(line)) is not None]


def feed_all(reader: StreamReader, path: Path) -> list[int]:
    return [reader.feed(c)[0] for c in chunks(path)]


# --- llama-server's own /completion ----------------------------------------------------------


def test_native_stream_counts_the_tokens_held_back_as_incomplete_utf8() -> None:
    reader = LlamaReader()
    counts = feed_all(reader, NATIVE)
    assert counts == [4, 4, 4, 0]  # three chunks with text, then the final one with timings
    assert reader.timings["predicted_n"] == 12 and reader.counted_by == TokenCount.RUNNING
    # what the chunks' own token lists say: one id each, the held-back ones are in none of them
    assert sum(chunk_tokens(c) for c in chunks(NATIVE)) == 3
    assert len(reader.token_ids) == 3


def test_native_stream_without_a_running_count_counts_token_ids() -> None:
    reader = LlamaReader()
    assert reader.feed({"content": "ab", "tokens": [5, 6]}) == (2, "ab")
    assert reader.feed({"content": "c"}) == (1, "c")
    assert reader.counted_by == TokenCount.CHUNKS  # the weakest way any chunk was counted


# --- /v1/completions -------------------------------------------------------------------------


def test_openai_stream_of_llama_server_says_its_total_only_at_the_end() -> None:
    reader = OpenAIReader()
    assert feed_all(reader, OAI) == [1, 1, 1, 0]
    assert reader.counted_by == TokenCount.CHUNKS
    assert reader.timings["predicted_n"] == 12 and reader.complete


def test_openai_stream_with_timings_per_token_counts_every_token() -> None:
    reader = OpenAIReader()
    assert feed_all(reader, OAI_TPT) == [4, 4, 4, 0]
    assert reader.counted_by == TokenCount.RUNNING
    assert reader.timings["predicted_n"] == 12 and reader.timings["prompt_n"] == 72


def test_openai_reader_takes_vllm_continuous_usage_as_a_running_count() -> None:
    reader = OpenAIReader()
    assert feed_all(reader, FIXTURES / "vllm" / "completions-stream.sse") == [1, 2, 2, 1, 2, 0]
    assert reader.counted_by == TokenCount.RUNNING and reader.timings["predicted_n"] == 8


def test_a_running_count_on_every_chunk_does_not_end_the_stream_early() -> None:
    reader = OpenAIReader()
    for chunk in chunks(FIXTURES / "vllm" / "completions-stream.sse")[:2]:  # usage on each
        reader.feed(chunk)
    assert not reader.complete  # cut here, the stream is incomplete


@pytest.mark.parametrize(
    ("choice", "n", "how"),
    [
        ({"text": "ab", "token_ids": [3, 4]}, 2, TokenCount.IDS),  # vLLM/SGLang return_token_ids
        (
            {"text": "abc", "logprobs": {"tokens": ["a", "b", "c"], "token_logprobs": [0, 0, 0]}},
            3,
            "logprobs",
        ),
        ({"text": "ab", "logprobs": {"content": [{"token": "a"}, {"token": "b"}]}}, 2, "logprobs"),
        ({"text": "ab", "logprobs": None}, 1, TokenCount.CHUNKS),
        ({"text": ""}, 0, None),
    ],
)
def test_openai_reader_counts_ids_then_logprobs_then_chunks(
    choice: dict[str, Any], n: int, how: str | None
) -> None:
    reader = OpenAIReader()
    assert reader.feed({"choices": [{"index": 0, **choice}]})[0] == n
    assert reader.counted_by == how


def test_ollama_counts_chunks_and_its_eval_count_is_the_total() -> None:
    reader = OllamaReader()
    reader.feed({"response": "𓀊", "done": False})  # several tokens, held back until whole
    reader.feed({"response": "", "done": True, "eval_count": 8, "eval_duration": 10**8})
    assert reader.counted_by == TokenCount.CHUNKS and reader.timings["predicted_n"] == 8


# --- the request -----------------------------------------------------------------------------


def test_openai_job_sends_cache_prompt_false_and_a_running_count_request() -> None:
    body = completion_body("m", [1, 2], 16, 7)
    assert body["cache_prompt"] is False and body["ignore_eos"] is True
    assert body["timings_per_token"] is True
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    plain = completion_body("m", [1, 2], 16, 7, extras=False)
    assert not {f.split(".")[-1] for f in EXTRA_FIELDS} & ({*plain, *plain["stream_options"]})
    assert plain["stream_options"] == {"include_usage": True}
    json.dumps(body)


# --- client decode ---------------------------------------------------------------------------


def rec(**kw: Any) -> RequestRecord:
    return RequestRecord(kind="single", rep=0, n_in=8, n_out=120, **kw)


@pytest.mark.parametrize(
    ("kw", "tps"),
    [
        # every token counted: tokens after the first read over first → last read
        ({"stream_tokens": 120, "first_tokens": 4, "decode_stream_s": 0.58}, 116 / 0.58),
        # chunks only (40 of 3 tokens), the engine's 120: its total spread over the chunks
        (
            {
                "stream_tokens": 40,
                "first_tokens": 1,
                "decode_stream_s": 0.585,
                "timings": {"predicted_n": 120},
            },
            117 / 0.585,
        ),
        # a record from before first_tokens existed: one token in the first read
        ({"stream_tokens": 11, "decode_stream_s": 2.0}, 5.0),
        ({"stream_tokens": 4, "first_tokens": 4, "decode_stream_s": 0.0}, None),
    ],
)
def test_client_decode_counts_tokens(kw: dict[str, Any], tps: float | None) -> None:
    got = m.client_decode_tps(rec(**kw))
    assert got == (pytest.approx(tps) if tps is not None else None)


def test_flags_say_which_count_client_decode_used() -> None:
    exact = rec(stream_tokens=120, stream_chunks=120, token_count="running", timings={"predicted_n": 120})
    assert token_count_flags([exact]) == []
    lumped = rec(stream_tokens=120, stream_chunks=30, token_count="running", timings={"predicted_n": 120})
    (flag,) = token_count_flags([exact, lumped])
    assert "30 chunks carried 120 tokens" in flag and "(in 1 of 2 requests)" in flag
    chunked = rec(stream_tokens=40, stream_chunks=40, token_count="chunks", timings={"predicted_n": 120})
    (flag,) = token_count_flags([chunked])
    assert "40 chunks with text for the engine's 120 tokens" in flag and "engine's 120" in flag
    blind = rec(stream_tokens=40, stream_chunks=40, token_count="chunks")
    (flag,) = token_count_flags([blind])
    assert "no token count" in flag and "chunks as tokens" in flag


# --- the client, on the recorded bytes -------------------------------------------------------


def test_client_records_tokens_chunks_and_the_first_read() -> None:
    """The recorded native stream served one chunk per read: 12 tokens, 3 chunks, 4 at first."""
    events = NATIVE.read_bytes().split(b"\n\n")

    async def serve(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            if event.strip():
                await resp.write(event + b"\n\n")
                await asyncio.sleep(0.02)
        return resp

    async def go() -> RequestRecord:
        app = web.Application()
        app.router.add_post("/completion", serve)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                req = Request("/completion", {"prompt": [1]}, 72, 12)
                return await stream_request(
                    session, f"http://127.0.0.1:{port}", req, LlamaReader(), kind="single", rep=0
                )
        finally:
            await runner.cleanup()

    r = asyncio.run(go())
    assert r.ok, r.error
    assert (r.stream_tokens, r.stream_chunks, r.first_tokens, r.token_count) == (12, 3, 4, "running")
    assert r.decode_stream_s is not None and r.decode_stream_s > 0
    assert m.client_decode_tps(r) == pytest.approx(8 / r.decode_stream_s)
