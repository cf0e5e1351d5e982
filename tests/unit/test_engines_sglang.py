"""The SGLang engine against recorded ``launch_server --help`` text and ``/generate`` bodies.

Not run here: no live test (SGLang needs a GPU it supports). The fixtures and where each came
from are in tests/fixtures/sglang/README.md; a fake ``python3`` prints them so the help probe
runs its real subprocess path.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.fakes.gpu_engines import FIXTURES, fake_cli, feed, serve

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.base import Attached, PlanContext, Turn
from lanebench.engines.gpu_common import ArgparseHelp, parse_argparse_help
from lanebench.engines.registry import get_engine
from lanebench.engines.sglang import SGLang, SGLangReader, generate_body, meta_figures
from lanebench.errors import BadInput, NotFound
from lanebench.server.process import ServerProcess

FIX = FIXTURES / "sglang"
JOB = JobSpec(n_in=1024, n_out=512)
CTX = PlanContext(job=JOB)


def fake_python(tmp_path: Path, help_: str | None, version: str = "0.5.4", name: str = "python3") -> Path:
    """A Python that runs ``-m sglang.launch_server --help`` (or ``sglang serve --help``) by
    printing recorded help; ``help_=None`` is a Python without SGLang."""
    missing = (
        "echo \"/usr/bin/python3: Error while finding module specification for 'sglang.launch_server' "
        "(ModuleNotFoundError: No module named 'sglang')\" >&2; exit 1"
    )
    show = f"cat '{FIX / help_}'" if help_ else missing
    cases = {"-m": show, "serve": show, "-c": f"echo 'a warning on stderr' >&2; echo '{version}'"}
    return fake_cli(tmp_path / f"{name}-{help_}" / name, cases, match="$1")


def probe(binary: Path, label: str = "sglang") -> ArgparseHelp:
    return SGLang().read_help(binary, label)


@pytest.fixture()
def v05(tmp_path: Path) -> Path:
    return fake_python(tmp_path, "v0.5-launch_server.help")


def lane(binary: Path | None, **kw: Any) -> LaneSpec:
    fields: dict[str, Any] = {"name": "s", "engine": "sglang", "served_model": "Qwen/Qwen3-8B", "slots": 4}
    if binary is not None:
        fields["server_bin"] = binary
    return LaneSpec.model_validate({**fields, **kw})


def test_registry_finds_sglang() -> None:
    engine = get_engine("sglang")
    assert isinstance(engine, SGLang) and engine.name == "sglang" and engine.launches


# --- help and probe --------------------------------------------------------------------------


def test_help_of_0_5_lists_the_flags_lanebench_uses() -> None:
    h = parse_argparse_help((FIX / "v0.5-launch_server.help").read_text())
    for flag in ("--model-path", "--model", "--max-running-requests", "--context-length", "--enable-metrics"):
        assert h.has(flag)
    assert h.values("--speculative-algorithm") == ("EAGLE", "EAGLE3", "NEXTN", "STANDALONE", "NGRAM")
    assert h.values("--kv-cache-dtype") == ("auto", "fp8_e5m2", "fp8_e4m3")
    assert h.has("--speculative-draft-model") and h.has("--tp-size")


def test_help_of_0_1_lacks_max_running_requests() -> None:
    h = parse_argparse_help((FIX / "v0.1-launch_server.help").read_text())
    assert h.has("--model-path") and h.has("--port") and h.has("--tp-size")
    assert not h.has("--max-running-requests") and not h.has("--context-length")
    assert h.values("--load-format") == ("auto", "pt", "safetensors", "npcache", "dummy")


def test_probe_runs_the_launcher_and_reads_the_version(v05: Path) -> None:
    h = probe(v05)
    assert h.command == f"{v05} -m sglang.launch_server --help" and h.version == "0.5.4"
    assert h.has("--speculative-num-draft-tokens")


def test_probe_of_a_python_without_sglang_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as exc:
        probe(fake_python(tmp_path, None))
    assert "No module named 'sglang'" in str(exc.value) and "server_bin" in str(exc.value)


def test_a_server_bin_named_sglang_uses_sglang_serve(tmp_path: Path) -> None:
    cli = fake_python(tmp_path, "v0.5-launch_server.help", name="sglang")
    plan = SGLang().plan(lane(cli), CTX)
    assert plan.argv(1)[:2] == [str(cli), "serve"] and plan.dialect.version is None


# --- planning and argv -----------------------------------------------------------------------


def test_argv_of_a_plain_lane(v05: Path) -> None:
    plan = SGLang().plan(lane(v05), CTX)
    assert plan.argv(30001) == [
        str(v05),
        "-m",
        "sglang.launch_server",
        "--model-path",
        "Qwen/Qwen3-8B",
        "--host",
        "127.0.0.1",
        "--port",
        "30001",
        "--max-running-requests",
        "4",
        "--context-length",
        "1792",
        "--disable-radix-cache",
        "--enable-metrics",
    ]
    assert plan.build_info["version"] == "0.5.4" and plan.ctx == 1792 * 4


def test_argv_of_draft_lanes(v05: Path, tmp_path: Path) -> None:
    draft = tmp_path / "draft"
    draft.mkdir()
    argv = SGLang().plan(lane(v05, draft=Draft(kind="model", path=draft, block_size=4)), CTX).argv(1)
    i = argv.index("--speculative-algorithm")
    assert argv[i : i + 10] == [
        "--speculative-algorithm",
        "STANDALONE",
        "--speculative-draft-model-path",
        str(draft),
        "--speculative-num-steps",
        "3",
        "--speculative-eagle-topk",
        "1",
        "--speculative-num-draft-tokens",
        "4",
    ]
    argv = SGLang().plan(lane(v05, draft=Draft(kind="mtp", path=draft, block_size=2)), CTX).argv(1)
    assert argv[argv.index("--speculative-algorithm") + 1] == "EAGLE"
    assert argv[argv.index("--speculative-num-draft-tokens") + 1] == "2"
    # a draft of kind 'model' without a path drafts with the lane's own model
    argv = SGLang().plan(lane(v05, draft=Draft(kind="model")), CTX).argv(1)
    assert argv[argv.index("--speculative-draft-model-path") + 1] == "Qwen/Qwen3-8B"


def test_a_local_model_with_a_served_name_and_kv(v05: Path, tmp_path: Path) -> None:
    argv = SGLang().plan(lane(v05, model=tmp_path, served_model="m", kv="fp8_e5m2"), CTX).argv(1)
    assert argv[argv.index("--model-path") + 1] == str(tmp_path)
    assert argv[argv.index("--served-model-name") + 1] == "m"
    assert argv[argv.index("--kv-cache-dtype") + 1] == "fp8_e5m2"


def test_an_early_build_is_refused_naming_the_missing_flag(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as exc:
        SGLang().plan(lane(fake_python(tmp_path, "v0.1-launch_server.help")), CTX)
    assert "field 'slots' needs --max-running-requests" in str(exc.value) and "\n" not in str(exc.value)


def test_an_algorithm_the_build_does_not_list_is_refused(v05: Path) -> None:
    plan = SGLang().plan(lane(v05), CTX)
    h = plan.dialect
    assert isinstance(h, ArgparseHelp)
    no_standalone = ArgparseHelp(h.flags, {"--speculative-algorithm": ("EAGLE", "EAGLE3")}, "0.4.9", "help")
    plan = SGLang().plan(lane(v05, draft=Draft(kind="model", block_size=3)), CTX)
    plan.dialect = no_standalone
    with pytest.raises(BadInput, match=r"field 'draft.kind' = 'STANDALONE': .* takes EAGLE, EAGLE3"):
        plan.argv(1)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"kv": "q8_0"}, "this SGLang build's --kv-cache-dtype takes auto, fp8_e5m2, fp8_e4m3"),
        ({"extra_args": ["--context-length", "9"]}, "field 'extra_args' sets --context-length"),
        ({"gpu_layers": 10}, "field 'gpu_layers' = 10 has no SGLang equivalent"),
        ({"served_model": None}, "field 'model': engine 'sglang' needs a model"),
    ],
)
def test_refusals_are_one_line_and_name_the_field(v05: Path, fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(BadInput) as exc:
        SGLang().plan(lane(v05, **fields), CTX)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_draft_flags_in_extra_args_are_refused_only_for_draft_lanes(v05: Path) -> None:
    extra = ["--speculative-algorithm", "NGRAM"]
    SGLang().plan(lane(v05, extra_args=extra), CTX)  # the user's own speculation: allowed
    with pytest.raises(
        BadInput, match="sets --speculative-algorithm, which lanebench sets from field 'draft'"
    ):
        SGLang().plan(lane(v05, extra_args=extra, draft=Draft(kind="model")), CTX)


def test_endpoint_probes_health(v05: Path, tmp_path: Path) -> None:
    plan = SGLang().plan(lane(v05), CTX)
    ep = SGLang().endpoint(plan, tmp_path / "s.log", 900.0)
    assert isinstance(ep, ServerProcess) and ep.ready_path == "/health"


# --- request and reader ----------------------------------------------------------------------


def test_request_body_shape(v05: Path) -> None:
    plan = SGLang().plan(lane(v05), CTX)
    req = SGLang().request(plan, [5, 6, 7], Turn(3, 32, 42))
    assert req.path == "/generate"
    assert req.body == {
        "input_ids": [5, 6, 7],
        "sampling_params": {"max_new_tokens": 32, "temperature": 0.0, "ignore_eos": True},
        "stream": True,
    }
    assert generate_body("hello", 4)["text"] == "hello"


def test_reader_over_a_stream_with_speculative_meta_info() -> None:
    reader = SGLangReader()
    tokens, text = feed(reader, FIX / "generate-stream.sse")
    assert (tokens, text) == (8, " The quick brown fox jumps over the lazy")  # new suffixes only
    assert reader.complete and reader.error is None
    assert reader.timings == pytest.approx(
        {
            "prompt_n": 64,
            "predicted_n": 8,
            "cache_n": 0,
            "predicted_per_second": 100.0,
            "predicted_ms": 70.0,  # 7 tokens after the first at 100 tokens/s
            "prompt_ms": 12.5,  # e2e 82.5 ms less the decode
            "prompt_per_second": 5120.0,
            "spec_verify_ct": 4,
            "draft_n": 8,
            "draft_n_accepted": 3,
        }
    )


def test_reader_over_an_older_stream_keeps_only_the_verify_count() -> None:
    reader = SGLangReader()
    assert feed(reader, FIX / "generate-stream-v0.4.sse") == (4, " The sky is blue")
    assert reader.timings == {"prompt_n": 16, "predicted_n": 4, "cache_n": 0, "spec_verify_ct": 2}


def test_meta_figures_of_0_5_spec_names() -> None:
    # tokenizer_manager._calculate_spec_decoding_metrics (0.5.x): token counts, not drafts
    meta = {
        "prompt_tokens": 10,
        "completion_tokens": 9,
        "spec_verify_ct": 4,
        "spec_accept_token_num": 4,
        "spec_draft_token_num": 12,
        "spec_accept_rate": 0.333,
        "spec_accept_length": 2.25,
    }
    t = meta_figures(meta)
    assert (t["draft_n"], t["draft_n_accepted"], t["spec_verify_ct"]) == (12, 4, 4)
    assert "predicted_per_second" not in t  # no decode_throughput without --enable-metrics


def test_reader_with_stream_output_takes_segments_as_they_come() -> None:
    reader = SGLangReader()
    chunks = [
        {"text": "ab", "output_ids": [1], "meta_info": {"completion_tokens": 1, "finish_reason": None}},
        {"text": "ab", "output_ids": [2], "meta_info": {"completion_tokens": 2, "finish_reason": None}},
        {
            "text": "c",
            "output_ids": [3],
            "meta_info": {"completion_tokens": 3, "finish_reason": {"type": "length"}},
        },
    ]
    out = [reader.feed(c) for c in chunks]
    assert out == [(1, "ab"), (1, "ab"), (1, "c")] and reader.complete


def test_reader_reports_an_error_chunk() -> None:
    reader = SGLangReader()
    feed(reader, FIX / "error-stream.sse")
    assert reader.error is not None and "longer than the model's context length" in reader.error
    assert not reader.complete and "finish_reason" in reader.missing_end()


# --- the HTTP side ------------------------------------------------------------------------------


def test_prompt_ids_from_tokenize_or_text_when_the_build_has_none(v05: Path) -> None:
    plan = SGLang().plan(lane(v05), CTX)

    async def tokenize(request: web.Request) -> web.Response:
        return web.Response(text=(FIX / "tokenize.json").read_text(), content_type="application/json")

    async def body(base: str) -> list[int] | None:
        async with aiohttp.ClientSession() as session:
            return await SGLang().prompt_ids(session, Attached(base, "t", lambda: None), plan, "x")

    assert (
        serve([web.post("/tokenize", tokenize)], body)
        == json.loads((FIX / "tokenize.json").read_text())["tokens"]
    )
    assert serve([], body) is None  # 404: an SGLang before /tokenize
    assert asyncio.run(_counters()) == {}


async def _counters() -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        return await SGLang().counters(session, Attached("http://127.0.0.1:9", "t", lambda: None))
