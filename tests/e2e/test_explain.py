"""End to end through the CLI process: ``roofline`` on the real 270M GGUF, ``advise`` on a run
document of it, and ``roofline``'s one-line errors. ``--help``, ``host --bandwidth`` and
``advise``'s errors need no GGUF: tests/integration/test_explain_cli.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_explain_cli import cli, ok_json, one_line_error

pytestmark = pytest.mark.e2e  # the real CLI end to end


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
