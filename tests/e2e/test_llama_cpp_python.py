"""llama-cpp-python's OpenAI-compatible server as an ``openai`` lane: a second real engine, built
from PyPI. Opt-in (``pytest --run-opt-in llama_cpp_python``): installing it compiles llama.cpp
again, which CI's time budget does not cover; with the option given, a missing package fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli_helpers import lanes_file, run_cli

from lanebench.server.process import free_port, health_status

pytestmark = pytest.mark.llama_cpp_python


@pytest.fixture(scope="module")
def llama_cpp_python_server(tmp_path_factory: pytest.TempPathFactory, gemma_270m: Path) -> Iterator[str]:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python[server] is not installed ({exc})")
    port = free_port()
    log = (tmp_path_factory.mktemp("lcp") / "server.log").open("wb")
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_270m)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while health_status(port, 1.0, "/v1/models") != 200:
            assert proc.poll() is None, "llama-cpp-python's server exited while loading"
            assert time.monotonic() < deadline, "llama-cpp-python's server did not listen in 180 s"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_llama_cpp_python_server_is_measured_as_an_openai_lane(
    tmp_path: Path, llama_cpp_python_server: str
) -> None:
    lanes = lanes_file(
        tmp_path,
        f"""
[[lane]]
name = "llama-cpp-python"
engine = "openai"
url = "{llama_cpp_python_server}"
""",
    )
    args = ("--n-in", "128", "--n-out", "32", "--reps", "2", "--aggregate", "0")
    proc, left = run_cli(
        tmp_path, "run", str(lanes), *args, "--json", str(tmp_path / "out.json"), timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert left == []
    (lane,) = json.loads((tmp_path / "out.json").read_text())["lanes"]
    assert lane["status"] in ("ok", "flagged"), lane["error"]
    assert lane["summary"]["decode_client_tps"]["median"] > 0
    assert lane["summary"]["prefill_client_tps"]["median"] > 0
    singles = [s for s in lane["samples"] if s["kind"] == "single"]
    assert all(s["ok"] for s in singles)
    assert all(s["stream_tokens"] == 32 for s in singles)
