"""The Ollama engine against recorded ``ollama serve --help`` text and ``/api/*`` bodies.

Not run here: no live test (Ollama is not installed here and no model can be pulled). The
fixtures and where each came from are in tests/fixtures/ollama/README.md; a fake ``ollama``
prints them so the help probe runs its real subprocess path.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.fakes.gpu_engines import FIXTURES, fake_cli, feed, serve

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.base import Attached, PlanContext, Turn
from lanebench.engines.ollama import (
    Ollama,
    OllamaReader,
    has_model,
    parse_serve_help,
    probe,
    probe_version,
)
from lanebench.engines.registry import get_engine
from lanebench.errors import BadInput, LaneFailed, NotFound
from lanebench.server.process import ServerProcess

FIX = FIXTURES / "ollama"
JOB = JobSpec(n_in=1024, n_out=512)
CTX = PlanContext(job=JOB)


def fake_ollama(tmp_path: Path, help_: str = "serve.help") -> Path:
    cases = {
        '"serve --help"': f"cat '{FIX / help_}'",
        '"--version"': 'echo "Warning: could not connect to a running Ollama instance" >&2; '
        f"cat '{FIX / 'version.txt'}'",
    }
    return fake_cli(tmp_path / help_ / "ollama", cases)


@pytest.fixture()
def ollama_bin(tmp_path: Path) -> Path:
    return fake_ollama(tmp_path)


def lane(binary: Path | None, **kw: Any) -> LaneSpec:
    fields: dict[str, Any] = {"name": "o", "engine": "ollama", "served_model": "llama3", "slots": 2}
    if binary is not None:
        fields["server_bin"] = binary
    return LaneSpec.model_validate({**fields, **kw})


def test_registry_finds_ollama() -> None:
    engine = get_engine("ollama")
    assert isinstance(engine, Ollama) and engine.name == "ollama"


# --- help and probe --------------------------------------------------------------------------


def test_serve_help_lists_the_environment_variables() -> None:
    now = parse_serve_help((FIX / "serve.help").read_text())
    old = parse_serve_help((FIX / "serve-v0.3.help").read_text())
    assert {
        "OLLAMA_HOST",
        "OLLAMA_NUM_PARALLEL",
        "OLLAMA_KV_CACHE_TYPE",
        "OLLAMA_FLASH_ATTENTION",
    } <= now.env_vars
    assert "OLLAMA_CONTEXT_LENGTH" in now.env_vars and len(now.env_vars) == 16
    assert "OLLAMA_KV_CACHE_TYPE" not in old.env_vars and "OLLAMA_TMPDIR" in old.env_vars


def test_probe_reads_help_and_version(ollama_bin: Path) -> None:
    h = probe(ollama_bin)
    assert h.version == "0.5.7" and h.has("OLLAMA_NUM_PARALLEL")


def test_probe_refuses_something_that_is_not_ollama(tmp_path: Path) -> None:
    script = tmp_path / "ollama"
    script.write_text("#!/bin/sh\necho 'usage: something else'\n")
    script.chmod(0o755)
    with pytest.raises(NotFound, match="documents no OLLAMA_HOST"):
        probe(script)


# --- planning --------------------------------------------------------------------------------


def test_argv_of_a_launched_lane(ollama_bin: Path) -> None:
    plan = Ollama().plan(lane(ollama_bin), CTX)
    argv = plan.argv(11500)
    env_bin = plan.build_info["env_bin"]
    assert argv == [env_bin, "OLLAMA_HOST=127.0.0.1:11500", "OLLAMA_NUM_PARALLEL=2", str(ollama_bin), "serve"]
    assert plan.build == str(ollama_bin) and plan.build_info["version"] == "0.5.7"
    assert plan.ctx == 1792 * 2


def test_a_quantised_cache_turns_flash_attention_on(ollama_bin: Path) -> None:
    argv = Ollama().plan(lane(ollama_bin, kv="q8_0"), CTX).argv(1)
    assert argv[1:5] == [
        "OLLAMA_HOST=127.0.0.1:1",
        "OLLAMA_FLASH_ATTENTION=1",
        "OLLAMA_KV_CACHE_TYPE=q8_0",
        "OLLAMA_NUM_PARALLEL=2",
    ]
    argv = Ollama().plan(lane(ollama_bin, flash_attn="off"), CTX).argv(1)
    assert "OLLAMA_FLASH_ATTENTION=0" in argv


def test_a_build_without_kv_cache_type_is_refused_naming_the_variable(tmp_path: Path) -> None:
    old = fake_ollama(tmp_path, "serve-v0.3.help")
    Ollama().plan(lane(old), CTX)  # a plain lane is fine
    with pytest.raises(BadInput) as exc:
        Ollama().plan(lane(old, kv="q4_0"), CTX)
    assert "field 'kv' needs OLLAMA_KV_CACHE_TYPE" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"served_model": None}, "field 'served_model': engine 'ollama' needs the name of a model"),
        ({"model": "/tmp"}, "field 'model': Ollama serves the models it has pulled"),
        ({"draft": Draft(kind="model")}, "field 'draft': Ollama has no speculative decoding"),
        ({"kv": "q5_1"}, "OLLAMA_KV_CACHE_TYPE takes f16, q8_0, q4_0"),
        ({"kv": "q8_0", "flash_attn": "off"}, "needs flash attention in Ollama"),
        ({"env": {"OLLAMA_NUM_PARALLEL": "8"}}, "field 'env' sets OLLAMA_NUM_PARALLEL"),
        ({"extra_args": ["--verbose"]}, "`ollama serve` takes no flags"),
        ({"api_key_env": "KEY"}, "field 'api_key_env' is for an Ollama at a 'url'"),
    ],
)
def test_refusals_are_one_line_and_name_the_field(
    ollama_bin: Path, fields: dict[str, Any], needle: str
) -> None:
    with pytest.raises(BadInput) as exc:
        Ollama().plan(lane(ollama_bin, **fields), CTX)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_endpoint_of_a_launched_lane_probes_api_version(ollama_bin: Path, tmp_path: Path) -> None:
    plan = Ollama().plan(lane(ollama_bin, env={"OLLAMA_MODELS": "/models"}), CTX)
    ep = Ollama().endpoint(plan, tmp_path / "o.log", 60.0)
    assert isinstance(ep, ServerProcess) and ep.ready_path == "/api/version"
    assert ep.env == {"OLLAMA_MODELS": "/models"}


def test_an_attached_lane_starts_nothing_and_keeps_its_key_in_a_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_PROXY_KEY", "s3cret")
    spec = lane(None, url="http://gpu-box:11434", api_key_env="OLLAMA_PROXY_KEY")
    plan = Ollama().plan(spec, CTX)
    assert plan.build == "http://gpu-box:11434" and plan.server_bin is None and plan.argv(1) == []
    assert "s3cret" not in json.dumps(plan.build_info)
    ep = Ollama().endpoint(plan, Path("unused.log"), 1.0)
    assert isinstance(ep, Attached) and ep.headers() == {"Authorization": "Bearer s3cret"}
    with pytest.raises(BadInput, match="field 'kv' configures an Ollama lanebench starts"):
        Ollama().plan(lane(None, url="http://gpu-box:11434", kv="q8_0"), CTX)


@pytest.fixture()
def version_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (FIX / "version.json").read_bytes()
            self.send_response(200 if self.path == "/api/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_readiness_probe_of_an_attached_ollama(version_server: str) -> None:
    assert probe_version(version_server, None) is None
    assert probe_version("http://127.0.0.1:9", None, timeout_s=1.0) is not None
    plan = Ollama().plan(lane(None, url=version_server), CTX)
    ep = Ollama().endpoint(plan, Path("unused.log"), 1.0)
    ep.check_alive()
    dead = Ollama().endpoint(Ollama().plan(lane(None, url="http://127.0.0.1:9"), CTX), Path("x"), 1.0)
    with pytest.raises(LaneFailed, match=r"cannot reach http://127\.0\.0\.1:9"):
        dead.check_alive()


# --- request and reader ----------------------------------------------------------------------


def test_request_body_shape(ollama_bin: Path) -> None:
    plan = Ollama().plan(lane(ollama_bin, threads=8, gpu_layers=20), CTX)
    req = Ollama().request(plan, "Once upon a time", Turn(1024, 512, 7))
    assert req.path == "/api/generate" and (req.n_in, req.n_out) == (1024, 512)
    assert req.body == {
        "model": "llama3",
        "prompt": "Once upon a time",
        "raw": True,
        "stream": True,
        "options": {
            "num_ctx": 1792,
            "num_thread": 8,
            "num_gpu": 20,
            "num_predict": 512,
            "temperature": 0.0,
            "seed": 7,
        },
    }
    with pytest.raises(BadInput, match="text prompts, not token ids"):
        Ollama().request(plan, [1, 2], Turn(2, 4))


def test_reader_over_a_recorded_stream() -> None:
    reader = OllamaReader()
    assert feed(reader, FIX / "generate-stream.ndjson") == (8, " The quick brown fox jumps over the lazy")
    assert reader.complete and reader.error is None
    assert reader.timings == pytest.approx(
        {
            "prompt_n": 64,
            "prompt_ms": 12.5,
            "prompt_per_second": 5120.0,
            "predicted_n": 8,
            "predicted_ms": 80.0,
            "predicted_per_second": 100.0,  # Ollama's own eval_count / eval_duration
            "load_ms": 2.5,
            "total_ms": 95.0,
            "done_reason": "length",
        }
    )


def test_reader_reports_an_error_line_and_a_missing_end() -> None:
    reader = OllamaReader()
    feed(reader, FIX / "error-stream.ndjson")
    assert reader.error == 'model "llama9:70b" not found, try pulling it first'
    assert not reader.complete and "done: true" in reader.missing_end()


def test_has_model_reads_latest_as_the_default_tag() -> None:
    names = {m["name"] for m in json.loads((FIX / "tags.json").read_text())["models"]}
    assert (
        has_model(names, "llama3") and has_model(names, "llama3:latest") and has_model(names, "codellama:13b")
    )
    assert not has_model(names, "codellama") and not has_model(names, "llama3.2:1b")


# --- prepare: the model must be pulled, and is loaded with the run's options --------------------


def test_prepare_checks_tags_then_loads_with_the_run_options(ollama_bin: Path) -> None:
    posted: list[dict[str, Any]] = []

    async def tags(request: web.Request) -> web.Response:
        return web.Response(text=(FIX / "tags.json").read_text(), content_type="application/json")

    async def generate(request: web.Request) -> web.Response:
        posted.append(await request.json())
        return web.json_response({"model": "llama3", "response": "", "done": True})

    routes = [web.get("/api/tags", tags), web.post("/api/generate", generate)]

    def prepare(spec: LaneSpec) -> Any:
        plan = Ollama().plan(spec, CTX)

        async def body(base: str) -> None:
            async with aiohttp.ClientSession() as session:
                await Ollama().prepare(session, Attached(base, "t", lambda: None), plan)

        return serve(routes, body)

    prepare(lane(ollama_bin, threads=4))
    assert posted == [
        {"model": "llama3", "prompt": "", "stream": False, "options": {"num_ctx": 1792, "num_thread": 4}}
    ]
    with pytest.raises(LaneFailed) as exc:
        prepare(lane(ollama_bin, served_model="llama3.2:1b"))
    assert "has no model 'llama3.2:1b'; pull it first: ollama pull llama3.2:1b" in str(exc.value)
    assert len(posted) == 1  # nothing loaded for a model that is not there


def test_prepare_fails_in_one_line_when_the_load_fails(ollama_bin: Path) -> None:
    async def tags(request: web.Request) -> web.Response:
        return web.Response(text=(FIX / "tags.json").read_text(), content_type="application/json")

    async def generate(request: web.Request) -> web.Response:
        return web.json_response({"error": "model requires more system memory"}, status=500)

    plan = Ollama().plan(lane(ollama_bin), CTX)

    async def body(base: str) -> None:
        async with aiohttp.ClientSession() as session:
            await Ollama().prepare(session, Attached(base, "t", lambda: None), plan)

    with pytest.raises(LaneFailed, match=r"could not load 'llama3': HTTP 500: .*more system memory"):
        serve([web.get("/api/tags", tags), web.post("/api/generate", generate)], body)
