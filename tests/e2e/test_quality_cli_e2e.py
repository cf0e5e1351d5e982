"""End to end through the CLI: ``run --quality`` (speed and quality of real lanes, stored and
reported), ``lanebench quality A B``, and bad input given as one line.

The run scores 255 tokens (one chunk of 512) on a tiny job: plain F16 KV (the reference), the
270M drafting for itself (greedy ids checked against the plain lane), and Q4_0 KV.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.cli_helpers import lanes_file, one_error_line, run_cli

pytestmark = pytest.mark.e2e


def lanebench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def run_doc(tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("qrun")
    lanes = lanes_file(
        d,
        f"""
[defaults]
model = "{gemma_270m}"
server_bin = "{server_bin}"
threads = 2

[[lane]]
name = "plain"

[[lane]]
name = "self-draft"
draft = {{ kind = "model", block_size = 3 }}

[[lane]]
name = "kv-q4"
kv = "q4_0"
flash_attn = "on"
""",
    )
    db = d / "results.sqlite"
    proc = lanebench(
        "run", str(lanes), "--n-in", "64", "--n-out", "24", "--reps", "2", "--aggregate", "0",
        "--quality", "--quality-tokens", "255", "--db", str(db), "--out-dir", str(d / "logs"),
        "--json", str(d / "out.json"), "--markdown", str(d / "out.md"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((d / "out.json").read_text())
    doc["_md"], doc["_stderr"] = (d / "out.md").read_text(), proc.stderr
    report = lanebench("report", "--db", str(db), "--format", "json")
    assert report.returncode == 0, report.stderr
    doc["_report"] = json.loads(report.stdout)
    doc["_quality_dir"] = d / "logs" / "quality"
    return doc


def lane(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(x for x in doc["lanes"] if x["name"] == name)


def test_every_lane_has_quality_against_the_reference(run_doc: dict[str, Any]) -> None:
    plain, draft, q4 = (lane(run_doc, n)["quality"] for n in ("plain", "self-draft", "kv-q4"))
    assert plain["status"] == "reference" and plain["ppl"] > 1
    assert q4["status"] == "measured" and q4["reference"] == "plain" and q4["tokens"] == 255
    assert q4["kld_mean"] > q4["kld_err"] > 0 and 0 < q4["same_top1"] < 100
    assert draft["status"] == "lossless" and draft["kld_mean"] == 0.0
    assert "quality: 255 tokens scored against 'plain'" in run_doc["_stderr"]
    assert list(run_doc["_quality_dir"].iterdir()) == []


def test_self_draft_greedy_ids_equal_the_plain_lane(run_doc: dict[str, Any]) -> None:
    draft = lane(run_doc, "self-draft")
    assert draft["status"] == "ok", draft["flags"]
    assert draft["quality"]["greedy"] is True and draft["quality"]["greedy_checked"] == 3  # warm-up + 2
    shas = [s["tokens_sha"] for s in draft["samples"]]
    assert all(shas) and shas == [s["tokens_sha"] for s in lane(run_doc, "plain")["samples"]]


def test_quality_table_in_markdown_and_stored_report(run_doc: dict[str, Any]) -> None:
    assert "Quality vs reference" in run_doc["_md"]
    assert "| kv-q4 | gemma-3-270m-q4_k_m.gguf | Q4_0 |" in run_doc["_md"]
    stored = {x["name"]: x for x in run_doc["_report"]["runs"][0]["lanes"]}
    assert stored["kv-q4"]["quality"]["kld_mean"] == lane(run_doc, "kv-q4")["quality"]["kld_mean"]
    assert stored["self-draft"]["quality"]["greedy"] is True
    titles = [t["title"] for t in run_doc["_report"]["tables"]]
    assert "Quality vs reference" in titles


def test_quality_command_compares_two_files(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    out = tmp_path / "q.json"
    proc = lanebench(
        "quality", str(gemma_270m), str(gemma_270m), "--kv", "q8_0", "--flash-attn", "on",
        "--quality-tokens", "255", "--threads", "2", "--server-bin", str(server_bin),
        "--out-dir", str(tmp_path / "logs"), "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = json.loads(out.read_text())["lanes"]
    assert a["quality"]["status"] == "reference"
    assert b["quality"]["status"] == "measured" and 0 < b["quality"]["kld_mean"] < 0.05
    assert "255 tokens scored" in proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--kv", "q8 0"), "--kv: "),
        (("--quality-tokens", "0"), "--quality-tokens: expected a positive number"),
    ],
)
def test_quality_command_bad_input_is_one_line(
    tmp_path: Path, gemma_270m: Path, args: tuple[str, ...], expected: str
) -> None:
    proc = lanebench("quality", str(gemma_270m), str(gemma_270m), *args, timeout=60)
    assert proc.returncode == 2
    assert expected in one_error_line(proc)


def test_quality_command_missing_file_is_one_line(tmp_path: Path, gemma_270m: Path) -> None:
    missing = str(tmp_path / "nope.gguf")
    proc = lanebench("quality", str(gemma_270m), missing, "--quality-tokens", "255", timeout=60)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "field 'model'" in line and "nope.gguf" in line


def test_unknown_reference_is_refused_before_anything_starts(tmp_path: Path, gemma_270m: Path) -> None:
    lanes = lanes_file(tmp_path, f'[defaults]\nmodel = "{gemma_270m}"\n\n[[lane]]\nname = "plain"\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), "--quality", "--reference", "nope", timeout=60)
    assert proc.returncode == 2 and not left
    assert "--reference: no lane named 'nope' (lanes: plain)" in one_error_line(proc)
