"""The client's pure pieces: SSE line parsing, token counting per chunk, the request body."""

from __future__ import annotations

import json

import pytest

from lanebench.engines.llamacpp.engine import chunk_tokens, completion_body
from lanebench.measure.client import parse_sse_line


def test_parse_sse_data_line() -> None:
    line = b'data: {"content":" the","tokens":[279],"stop":false}\n'
    assert parse_sse_line(line) == {"content": " the", "tokens": [279], "stop": False}


def test_parse_sse_without_space_and_with_crlf() -> None:
    assert parse_sse_line(b'data:{"a":1}\r\n') == {"a": 1}


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b"data: [DONE]\n",
        b"data:\n",
        b"event: message\n",
        b": keep-alive comment\n",
        b"data: {not json}\n",
        b"data: [1, 2, 3]\n",
        b'data: "text"\n',
        b"event: ping\n",
        b"[1, 2]\n",
    ],
)
def test_parse_sse_ignores_everything_else(line: bytes) -> None:
    assert parse_sse_line(line) is None


def test_parse_line_takes_ndjson_too() -> None:
    """Ollama streams bare JSON lines (NDJSON), not SSE ``data:`` lines."""
    assert parse_sse_line(b'{"response":"x","done":false}\n') == {"response": "x", "done": False}


def test_parse_sse_final_chunk_with_timings() -> None:
    final = {
        "content": "",
        "tokens": [],
        "stop": True,
        "timings": {"prompt_n": 256, "predicted_n": 16, "draft_n": 12, "draft_n_accepted": 11},
    }
    got = parse_sse_line(b"data: " + json.dumps(final).encode() + b"\n\n")
    assert got == final
    assert chunk_tokens(got) == 0


@pytest.mark.parametrize(
    ("chunk", "n"),
    [
        ({"content": "a", "tokens": [1]}, 1),
        ({"content": "abc", "tokens": [1, 2, 3]}, 3),  # a draft round can carry several
        ({"content": "", "tokens": [7]}, 1),  # a token whose text is not complete yet
        ({"content": "x"}, 1),  # without return_tokens: one token per chunk
        ({"content": ""}, 0),
        ({"stop": True}, 0),
        ({"content": "", "tokens": []}, 0),
    ],
)
def test_chunk_tokens(chunk: dict[str, object], n: int) -> None:
    assert chunk_tokens(chunk) == n


def test_completion_body_is_the_standard_job() -> None:
    prompt = [2, 651, 4320, 10]
    body = completion_body(prompt, 16, 42)
    assert body["prompt"] == prompt and all(isinstance(t, int) for t in body["prompt"])
    assert body["n_predict"] == 16
    assert body["cache_prompt"] is False
    assert body["ignore_eos"] is True
    assert body["temperature"] == 0.0
    assert body["seed"] == 42
    assert body["stream"] is True
    assert not any(k.startswith("speculative") for k in body)
    json.dumps(body)  # serialisable as is


def test_completion_body_carries_per_request_speculative_settings() -> None:
    body = completion_body([1, 2], 8, 0, {"n_max": 3, "p_min": 0.5})
    spec = {k: v for k, v in body.items() if k.startswith("speculative")}
    assert spec, body
    # flat dotted keys (what llama-server reads) or a nested object; either way the values arrive
    flat = {k.removeprefix("speculative."): v for k, v in spec.items() if "." in k}
    nested = spec.get("speculative") or {}
    assert {**nested, **flat} == {"n_max": 3, "p_min": 0.5}


def test_completion_body_does_not_share_the_prompt_mutably() -> None:
    prompt = [1, 2, 3]
    body = completion_body(prompt, 4, 1)
    assert body["prompt"] == [1, 2, 3]
    other = completion_body([9], 4, 1)
    assert other["prompt"] == [9] and body["prompt"] == [1, 2, 3]
