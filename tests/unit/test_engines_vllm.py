"""The vLLM engine against recorded ``vllm serve --help`` text and response bodies.

Not run here: no live test (vLLM needs a GPU it supports). The fixtures and where each came
from are in tests/fixtures/vllm/README.md; a fake ``vllm`` script prints them so the help
probe runs its real subprocess path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.fakes.gpu_engines import FIXTURES, fake_cli, feed, serve
from tests.gguf_fixtures import small_set

from lanebench.analysis import metrics as m
from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.config.run import RunConfig
from lanebench.engines.base import Attached, PlanContext, Turn
from lanebench.engines.gpu_common import ArgparseHelp, parse_argparse_help
from lanebench.engines.registry import get_engine, known
from lanebench.engines.vllm import Vllm, VllmReader, parse_metrics
from lanebench.errors import BadInput, NotFound
from lanebench.measure.client import parse_sse_line
from lanebench.orchestration.baseline_step import baseline_for
from lanebench.orchestration.memory_step import check_fit
from lanebench.orchestration.quality_step import quality_lanes
from lanebench.server.process import ServerProcess

FIX = FIXTURES / "vllm"
JOB = JobSpec(n_in=1024, n_out=512)
CTX = PlanContext(job=JOB)


def fake_vllm(tmp_path: Path, *, help_all: str | None, help_: str, version: str) -> Path:
    """A ``vllm`` that prints recorded help (and logs its calls to ``calls.log`` beside it);
    ``help_all=None`` answers ``--help=all`` the way argparse does in builds that predate it
    (an error, exit 2)."""
    all_branch = (
        f"cat '{FIX / help_all}'"
        if help_all
        else "echo \"vllm serve: error: argument -h/--help: ignored explicit argument 'all'\" >&2; exit 2"
    )
    folder = tmp_path / version
    cases = {
        '"serve --help=all"': all_branch,
        '"serve --help"': f"cat '{FIX / help_}'",
        '"--version"': 'echo "INFO 01-01 00:00:00 [__init__.py:1] Detected platform cuda." >&2; '
        f"echo '{version}'",
    }
    return fake_cli(folder / "vllm", cases, log=folder / "calls.log")


def probe(binary: Path, label: str = "vllm") -> ArgparseHelp:
    return Vllm().read_help(binary, label)


@pytest.fixture()
def current(tmp_path: Path) -> Path:
    return fake_vllm(
        tmp_path, help_all="current-serve-help-all.help", help_="current-serve.help", version="0.25.1"
    )


@pytest.fixture()
def v06(tmp_path: Path) -> Path:
    return fake_vllm(tmp_path, help_all=None, help_="v0.6.1-serve.help", version="0.6.1")


def lane(binary: Path | None, **kw: Any) -> LaneSpec:
    fields: dict[str, Any] = {"name": "v", "engine": "vllm", "served_model": "Qwen/Qwen3-8B", "slots": 2}
    if binary is not None:
        fields["server_bin"] = binary
    return LaneSpec.model_validate({**fields, **kw})


# --- registry --------------------------------------------------------------------------------


def test_registry_finds_the_three_engines_and_lists_them_for_an_unknown_name() -> None:
    import lanebench.engines.ollama
    import lanebench.engines.sglang  # noqa: F401

    assert isinstance(get_engine("vllm"), Vllm)
    assert get_engine("vllm").name == "vllm"
    assert {"vllm", "sglang", "ollama"} <= set(known())
    with pytest.raises(BadInput) as exc:
        get_engine("tgi")
    assert "unknown engine 'tgi'" in str(exc.value)
    for name in ("vllm", "sglang", "ollama", "openai", "llama.cpp"):
        assert name in str(exc.value)


# --- help parsing and the probe --------------------------------------------------------------


def test_help_of_a_current_build_lists_flags_and_choices() -> None:
    h = parse_argparse_help((FIX / "current-serve-help-all.help").read_text())
    for flag in ("--host", "--port", "--max-num-seqs", "--max-model-len", "--speculative-config", "-sc"):
        assert h.has(flag)
    assert h.has("--max_model_len") and h.has("--no-enable-prefix-caching")
    assert h.has("--enable-per-request-metrics")
    assert h.values("--per-request-spec-decode-stats") == ("none", "summary", "detailed")
    assert "fp8_e4m3" in h.values("--kv-cache-dtype") and "bfloat16" in h.values("--kv-cache-dtype")
    assert not h.has("--json-arg")  # the epilog's examples are not options


def test_the_bare_help_of_a_current_build_lists_only_groups() -> None:
    assert parse_argparse_help((FIX / "current-serve.help").read_text()).flags == frozenset()


def test_help_of_v0_8_has_speculative_config_and_v0_6_does_not() -> None:
    v08 = parse_argparse_help((FIX / "v0.8.3-serve.help").read_text())
    v06 = parse_argparse_help((FIX / "v0.6.1-serve.help").read_text())
    assert v08.has("--speculative-config") and v08.has("--no-enable-prefix-caching")
    assert not v08.has("--enable-per-request-metrics")
    assert not v06.has("--speculative-config") and v06.has("--speculative-model")
    assert v06.has("--enable-prefix-caching") and not v06.has("--no-enable-prefix-caching")
    assert v06.values("--kv-cache-dtype") == ("auto", "fp8", "fp8_e5m2", "fp8_e4m3")
    assert v06.has("-q") and v06.has("-tp")
    # a head with text after its choices: only the leading option counts
    assert v08.has("--tool-call-parser") and not v08.has("--tool-parser-plugin")


def test_probe_reads_help_all_and_the_bare_version_line(current: Path) -> None:
    h = probe(current)
    assert h.command.endswith("serve --help=all") and h.version == "0.25.1"
    assert h.has("--enable-per-request-metrics")


def test_probe_falls_back_to_help_on_builds_before_help_all(v06: Path) -> None:
    h = probe(v06)
    assert h.command.endswith("serve --help") and h.version == "0.6.1"
    assert h.has("--max-num-seqs") and not h.has("--speculative-config")


def test_the_help_is_read_once_per_binary_whatever_lane_asks(current: Path) -> None:
    Vllm().plan(lane(current, name="a"), CTX)
    Vllm().plan(lane(current, name="b", slots=4), CTX)
    assert (current.parent / "calls.log").read_text().splitlines() == ["serve --help=all", "--version"]


def test_probe_refuses_something_that_lists_no_port(tmp_path: Path) -> None:
    script = fake_vllm(tmp_path, help_all="current-serve.help", help_="current-serve.help", version="1.0")
    with pytest.raises(NotFound, match=r"^a lane: `.*` lists no --port .* server_bin"):
        probe(script, "a lane")


# --- planning and argv -----------------------------------------------------------------------


def test_argv_of_a_plain_lane(current: Path) -> None:
    plan = Vllm().plan(lane(current), CTX)
    assert plan.argv(8123) == [
        str(current),
        "serve",
        "Qwen/Qwen3-8B",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--max-num-seqs",
        "2",
        "--max-model-len",
        "1792",  # n_in + n_out + 64, rounded up to 256, per sequence
        "--no-enable-prefix-caching",
        "--enable-per-request-metrics",
    ]
    assert plan.ctx == 1792 * 2
    assert plan.build_info["model"] == "Qwen/Qwen3-8B" and plan.build_info["version"] == "0.25.1"
    assert plan.argv_preview[:2] == [str(current), "serve"]


def test_argv_of_a_draft_lane_and_a_local_model(current: Path, tmp_path: Path) -> None:
    model, draft = tmp_path / "target", tmp_path / "draft"
    model.mkdir()
    draft.mkdir()
    spec = lane(
        current,
        model=model,
        served_model="target",
        kv="fp8_e4m3",
        ctx=8192,
        extra_args=["--gpu-memory-utilization", "0.8"],
        draft=Draft(kind="model", path=draft, block_size=4),
    )
    argv = Vllm().plan(spec, CTX).argv(9000)
    assert argv[2] == str(model)
    assert argv[argv.index("--served-model-name") + 1] == "target"
    assert argv[argv.index("--max-model-len") + 1] == "4096"  # ctx 8192 over 2 slots
    assert argv[argv.index("--kv-cache-dtype") + 1] == "fp8_e4m3"
    config = json.loads(argv[argv.index("--speculative-config") + 1])
    assert config == {"method": "draft_model", "model": str(draft), "num_speculative_tokens": 3}
    assert argv[argv.index("--per-request-spec-decode-stats") + 1] == "summary"
    assert argv[-2:] == ["--gpu-memory-utilization", "0.8"]


def test_an_mtp_lane_uses_method_mtp(current: Path, tmp_path: Path) -> None:
    head = tmp_path / "head"
    head.mkdir()
    argv = Vllm().plan(lane(current, draft=Draft(kind="mtp", path=head, block_size=2)), CTX).argv(1)
    config = json.loads(argv[argv.index("--speculative-config") + 1])
    assert config == {"method": "mtp", "model": str(head), "num_speculative_tokens": 1}


def test_a_build_without_speculative_config_refuses_a_draft_lane_naming_the_flag(v06: Path) -> None:
    with pytest.raises(BadInput) as exc:
        Vllm().plan(lane(v06, draft=Draft(kind="model", block_size=3)), CTX)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "field 'draft' needs --speculative-config" in msg and "version 0.6.1" in msg


def test_an_old_build_still_serves_a_plain_lane(v06: Path) -> None:
    argv = Vllm().plan(lane(v06), CTX).argv(1)
    assert "--no-enable-prefix-caching" not in argv and "--enable-per-request-metrics" not in argv
    assert argv[argv.index("--max-num-seqs") + 1] == "2"


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"kv": "q8_0"}, "field 'kv' = 'q8_0': this vLLM build's --kv-cache-dtype takes auto, bfloat16"),
        ({"extra_args": ["--port=1"]}, "field 'extra_args' sets --port"),
        ({"extra_args": ["--max_num_seqs", "8"]}, "field 'extra_args' sets --max-num-seqs"),
        ({"threads": 4}, "field 'threads' = 4 has no vLLM equivalent"),
        ({"flash_attn": "on"}, "field 'flash_attn' = 'on' has no vLLM equivalent"),
        ({"served_model": None}, "field 'model': engine 'vllm' needs a model"),
        ({"ctx": 1024}, "field 'ctx' = 1024 gives 512 tokens per slot"),
        ({"draft": Draft(kind="model", p_min=0.5)}, "field 'draft.p_min' = 0.5"),
    ],
)
def test_refusals_are_one_line_and_name_the_field(current: Path, fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(BadInput) as exc:
        Vllm().plan(lane(current, **fields), CTX)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_a_missing_binary_names_server_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput, match=r"field 'server_bin': .* does not exist"):
        Vllm().plan(lane(tmp_path / "nope"), CTX)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NotFound, match="no 'vllm' on PATH and the lane sets no 'server_bin'"):
        Vllm().plan(lane(None), CTX)


def test_endpoint_is_a_server_process_probing_health(current: Path, tmp_path: Path) -> None:
    spec = lane(current, env={"CUDA_VISIBLE_DEVICES": "0"})
    plan = Vllm().plan(spec, CTX)
    ep = Vllm().endpoint(plan, tmp_path / "v.log", 600.0)
    assert isinstance(ep, ServerProcess)
    assert (
        ep.ready_path == "/health" and ep.env == {"CUDA_VISIBLE_DEVICES": "0"} and ep.load_timeout_s == 600.0
    )


# --- the request and the reader --------------------------------------------------------------


def test_request_body_shape(current: Path, v06: Path) -> None:
    plan = Vllm().plan(lane(current), CTX)
    req = Vllm().request(plan, [1, 2, 3], Turn(3, 16, 42))
    assert req.path == "/v1/completions" and (req.n_in, req.n_out) == (3, 16)
    assert req.body == {
        "model": "Qwen/Qwen3-8B",
        "prompt": [1, 2, 3],
        "max_tokens": 16,
        "ignore_eos": True,
        "temperature": 0.0,
        "seed": 42,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "include_metrics": True,
    }
    old = Vllm().request(Vllm().plan(lane(v06), CTX), [1], Turn(1, 4))
    assert "include_metrics" not in old.body  # only where the build can answer it


def test_reader_over_a_current_stream() -> None:
    reader = VllmReader()
    tokens, text = feed(reader, FIX / "completions-stream.sse")
    assert (tokens, text) == (8, " The quick brown fox jumps over the lazy")
    assert reader.complete and reader.error is None
    assert reader.timings == pytest.approx(
        {
            "prompt_n": 64,
            "predicted_n": 8,
            "prompt_ms": 12.5,
            "prompt_per_second": 5120.0,  # 64 tokens in 12.5 ms
            "predicted_ms": 70.0,
            "predicted_per_second": 100.0,  # the 7 tokens after the first in 70 ms
            "queue_ms": 0.4,
            "draft_n": 8,
            "draft_n_accepted": 3,
            "spec_steps": 4,
        }
    )


def test_reader_over_a_v0_6_stream_has_usage_only() -> None:
    reader = VllmReader()
    assert feed(reader, FIX / "completions-stream-v0.6.sse") == (4, " The sky is blue")
    assert reader.complete and reader.timings == {"prompt_n": 16, "predicted_n": 4}


def test_reader_reports_errors_in_both_shapes_and_a_missing_end() -> None:
    lines = (FIX / "error-stream.sse").read_bytes().splitlines()
    reader = VllmReader()
    first = parse_sse_line(lines[0])
    assert first is not None
    reader.feed(first)
    assert reader.error is not None and reader.error.startswith("This model's maximum context length")
    second = parse_sse_line(lines[2])
    assert second is not None
    reader.feed(second)
    assert reader.error == "The model `nope` does not exist."
    assert not reader.complete and "final usage chunk" in reader.missing_end()


# --- counters -----------------------------------------------------------------------------------


def test_prometheus_counters_map_to_llama_cpp_names() -> None:
    counters = parse_metrics((FIX / "metrics.prom").read_text())
    assert counters == {
        "spec_decode_num_drafts_total": 400.0,  # summed over the two engines
        "spec_decode_num_draft_tokens_total": 800.0,
        "spec_decode_num_accepted_tokens_total": 500.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="0"}': 310.0,
        'spec_decode_num_accepted_tokens_per_pos_total{position="1"}': 190.0,
    }
    delta = m.counter_delta({}, counters)
    assert m.per_position_acceptance(delta) == pytest.approx([0.775, 0.475])
    assert m.mean_accepted_length(
        delta["spec_decode_num_accepted_tokens_total"], delta["spec_decode_num_drafts_total"]
    ) == pytest.approx(2.25)


# --- the HTTP side, against a local stand-in serving the recorded bodies -------------------------


def test_prompt_ids_and_counters_over_http(current: Path) -> None:
    seen: dict[str, Any] = {}

    async def tokenize(request: web.Request) -> web.Response:
        seen["tokenize"] = await request.json()
        return web.Response(text=(FIX / "tokenize.json").read_text(), content_type="application/json")

    async def metrics_route(request: web.Request) -> web.Response:
        return web.Response(text=(FIX / "metrics.prom").read_text())

    plan = Vllm().plan(lane(current), CTX)

    async def body(base: str) -> tuple[list[int] | None, dict[str, float]]:
        ep = Attached(base, "test", lambda: None)
        async with aiohttp.ClientSession() as session:
            ids = await Vllm().prompt_ids(session, ep, plan, "The quick brown fox")
            return ids, await Vllm().counters(session, ep)

    ids, counters = serve([web.post("/tokenize", tokenize), web.get("/metrics", metrics_route)], body)
    assert ids == json.loads((FIX / "tokenize.json").read_text())["tokens"]
    assert seen["tokenize"] == {
        "model": "Qwen/Qwen3-8B",
        "prompt": "The quick brown fox",
        "add_special_tokens": False,
    }
    assert counters["spec_decode_num_drafts_total"] == 400.0


def test_counters_are_empty_when_metrics_cannot_be_read() -> None:
    async def body(base: str) -> dict[str, float]:
        async with aiohttp.ClientSession() as session:
            return await Vllm().counters(session, Attached(base, "test", lambda: None))

    assert serve([], body) == {}


def test_argparse_help_is_what_plans_carry(current: Path) -> None:
    plan = Vllm().plan(lane(current), CTX)
    assert isinstance(plan.dialect, ArgparseHelp) and plan.dialect.version == "0.25.1"


# --- what vLLM cannot do is asked of the engine, not guessed from its plan ---------------------


def test_what_vllm_lacks_is_said_and_nothing_of_llama_cpp_runs_on_it(current: Path, tmp_path: Path) -> None:
    """A vLLM plan has a server_bin and a model like a llama.cpp one; the fit check, the kernel
    view and quality must still not treat it as llama.cpp (no `vllm --help` for llama-server's
    defaults, no `vllm --list-devices`, no llama-bench looked for beside it)."""
    model = small_set(tmp_path)["main"]  # a GGUF vLLM could load
    plan = Vllm().plan(lane(current, model=model), CTX)
    calls = current.parent / "calls.log"
    probed = calls.read_text()
    check_fit([plan])
    assert calls.read_text() == probed and plan.fit_notes == []
    opts = RunConfig(out_dir=tmp_path, baseline=True).with_job(JOB)
    rec = baseline_for(plan, opts, {})
    assert rec is not None and rec.note.startswith("engine 'vllm': no kernel view"), rec.note
    (q,) = quality_lanes([plan])
    assert q.server_bin is None and q.unavailable.startswith("engine 'vllm': no quality tool")
