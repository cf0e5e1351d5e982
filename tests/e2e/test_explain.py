"""End to end through the CLI process: ``roofline`` on the real 270M GGUF, ``host --bandwidth``,
``advise`` on a run document, and the one-line errors of each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e  # the real CLI end to end


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok_json(*args: str) -> Any:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in lines[0]


@pytest.mark.parametrize("command", ["roofline", "host", "advise"])
def test_help(command: str) -> None:
    proc = cli(command, "--help")
    assert proc.returncode == 0
    assert "--json" in proc.stdout


def test_roofline_json_270m(gemma_270m: Path) -> None:
    out = ok_json("roofline", str(gemma_270m), "--ctx", "1000", "--device", "strix-halo", "--json")
    r = out["roofline"]
    assert r["tied_embeddings"] and r["n_layer"] == 18 and r["n_swa_layers"] == 15
    assert r["total_bytes"] == r["weights_bytes"] + r["kv_bytes"]
    assert r["kv_bytes"] == (15 * 512 + 3 * 1000) * 1024
    assert out["bandwidth"]["bytes_per_s"] == 256e9
    assert out["ceiling_tps"] == pytest.approx(256e9 / r["total_bytes"])


def test_roofline_human_with_head(gemma_270m: Path) -> None:
    proc = cli("roofline", str(gemma_270m), "--head", str(gemma_270m), "--bandwidth", "100GB/s")
    assert proc.returncode == 0, proc.stderr
    for text in ("output projection", "KV cache (f16", "per drafted token", "decode ceiling"):
        assert text in proc.stdout


def test_roofline_errors(tmp_path: Path, gemma_270m: Path) -> None:
    one_line_error(cli("roofline", str(tmp_path / "nope.gguf")), 2, "does not exist")
    (tmp_path / "x.gguf").write_bytes(b"NOTGGUF!")
    one_line_error(cli("roofline", str(tmp_path / "x.gguf")), 2, "not a GGUF file")
    one_line_error(cli("roofline", str(gemma_270m), "--kv", "turbo3"), 2, "unknown GGML type 'turbo3'")
    one_line_error(cli("roofline", str(gemma_270m), "--bandwidth", "fast"), 2, "--bandwidth")
    one_line_error(cli("roofline", str(gemma_270m), "--device", "tpu"), 2, "--device")
    proc = cli("roofline", str(gemma_270m), "--bandwidth", "256", "--device", "h200")
    one_line_error(proc, 2, "only one source of bandwidth")


def test_host_bandwidth_json() -> None:
    out = ok_json("host", "--bandwidth", "--seconds", "1", "--json")
    bw = out["bandwidth"]
    assert bw["read_gbs"] > 0 and bw["copy_gbs"] > 0 and bw["threads"] >= 1
    assert min(bw["sizes_bytes"]) >= out["llc_bytes"]
    assert len(out["known_devices"]) == 8
    one_line_error(cli("host", "--seconds", "0"), 2, "--seconds")


def _run_doc(model: Path) -> dict[str, Any]:
    def lane(name: str, tps: float, draft: dict[str, Any] | None, timings: dict[str, int]) -> dict[str, Any]:
        sample = {
            "kind": "single",
            "rep": 0,
            "n_in": 1150,
            "n_out": 200,
            "ok": True,
            "timings": {"predicted_per_second": tps, **timings},
        }
        return {
            "name": name,
            "lane": {"name": name, "model": str(model), "kv": "f16", "draft": draft},
            "status": "ok",
            "samples": [sample],
            "summary": {"decode_tps": {"median": tps, "min": tps, "max": tps, "n": 1}},
        }

    draft = {"kind": "model", "path": str(model), "block_size": 5}
    return {
        "run": {"run_id": "t", "job": {"n_in": 1150, "n_out": 200}},
        "lanes": [
            lane("plain", 37.3, None, {"predicted_n": 200}),
            lane("self-draft", 19.9, draft, {"predicted_n": 200, "draft_n": 168, "draft_n_accepted": 157}),
        ],
    }


def test_advise(tmp_path: Path, gemma_270m: Path) -> None:
    results = tmp_path / "run.json"
    results.write_text(json.dumps(_run_doc(gemma_270m)))
    out = ok_json("advise", str(results), "--device", "strix-halo", "--json")
    (a,) = out["advice"]
    assert a["lane"] == "self-draft" and a["plain_lane"] == "plain"
    assert a["measured_speedup"] == pytest.approx(19.9 / 37.3)
    # a draft as big as its target costs more than it saves at any block size
    assert a["best_block_size"] == 1
    rows = {r["lane"]: r for r in out["ceilings"]}
    assert rows["plain"]["pct"] == pytest.approx(100 * 37.3 / rows["plain"]["ceiling_tps"])
    # drafting with a same-size draft reads more per generated token than plain decoding
    assert rows["self-draft"]["bytes_per_token"] > rows["plain"]["bytes_per_token"]
    human = cli("advise", str(results), "--bandwidth", "256")
    assert human.returncode == 0, human.stderr
    assert "best B" in human.stdout and "% of ceiling" in human.stdout


def test_advise_errors(tmp_path: Path) -> None:
    one_line_error(cli("advise", str(tmp_path / "none.json")), 2, "RESULTS")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    one_line_error(cli("advise", str(bad)), 2, "not readable JSON")
    bad.write_text("[]")
    one_line_error(cli("advise", str(bad)), 2, "not a run document")
