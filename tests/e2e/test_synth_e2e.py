"""Fast-path synthetic models against the real build: llama-bench names their type, and
llama-server loads a Q4_0 / Q8_0 MoE model written as random blocks and generates with it."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as Q
from tests.conftest import need

from lanebench.gguf import shapes
from lanebench.gguf.synth import synth_main

pytestmark = pytest.mark.e2e
TYPES = [(Q.Q4_0, "Q4_0"), (Q.Q8_0, "Q8_0")]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, gemma_270m: Path) -> dict[Q, Path]:
    d = tmp_path_factory.mktemp("synth-e2e")
    main, _ = shapes.preset("tiny-moe")
    out = {}
    for qtype, label in TYPES:
        out[qtype] = d / f"tiny-moe-{label}.gguf"
        synth_main(out[qtype], main, gemma_270m, qtype)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, {}


@pytest.mark.parametrize(("qtype", "label"), TYPES)
def test_llama_bench_labels_the_synth_type(
    models: dict[Q, Path], server_bin: Path, qtype: Q, label: str
) -> None:
    bench = server_bin.parent / "llama-bench"
    if not bench.exists():
        need(f"llama-bench beside {server_bin}")
    proc = subprocess.run(
        [str(bench), "-m", str(models[qtype]), "-p", "16", "-n", "4", "-r", "1", "-t", "2", "-o", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert rows and all(label in r["model_type"] and "F32" not in r["model_type"] for r in rows), rows
    assert all(r["avg_ts"] > 0 for r in rows)


@pytest.mark.parametrize("qtype", [q for q, _ in TYPES])
def test_llama_server_loads_and_generates(
    models: dict[Q, Path], server_bin: Path, tmp_path: Path, qtype: Q
) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    argv = [str(server_bin), "-m", str(models[qtype]), "--host", "127.0.0.1", "--port", str(port),
            "-c", "256", "-np", "1", "-t", "2"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                try:
                    if _get(base + "/health")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "server not ready in 180 s"
                time.sleep(0.2)
            body = {"prompt": "Hello there", "n_predict": 8, "ignore_eos": True, "temperature": 0}
            status, reply = _get(base + "/completion", body)
            assert status == 200, log.read_text(errors="replace")[-3000:]
            timings = reply["timings"]
            assert isinstance(timings, dict) and timings["predicted_n"] == 8
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
