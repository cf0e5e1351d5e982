"""End to end through the CLI: ``run --quality`` (speed and quality of real lanes, stored and
reported), ``lanebench quality A B``, and bad input given as one line.

The run scores 255 tokens (one chunk of 512) on a tiny job: plain F16 KV (the reference), the
270M drafting for itself (a verdict from its greedy ids against the plain lane, no figure
anywhere: JSON, store, table, plot data), and Q4_0 KV. Pairings whose KLD would mean nothing
are refused before anything starts (run --quality, tune --max-kld, lanebench quality).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.cli_helpers import lanes_file, one_error_line, run_cli

from lanebench.records.lane import LaneResult
from lanebench.records.quality import FIGURE_FIELDS
from lanebench.report.quality import left_out, speed_quality_points

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
    doc["_db"] = db
    return doc


def lane(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(x for x in doc["lanes"] if x["name"] == name)


def test_every_lane_has_quality_against_the_reference(run_doc: dict[str, Any]) -> None:
    plain, draft, q4 = (lane(run_doc, n)["quality"] for n in ("plain", "self-draft", "kv-q4"))
    assert plain["status"] == "reference" and plain["ppl"] > 1
    assert q4["status"] == "measured" and q4["reference"] == "plain" and q4["tokens"] == 255
    assert q4["kld_mean"] > q4["kld_err"] > 0 and 0 < q4["same_top1"] < 100
    assert draft["status"] == "lossless" and draft["partner"] == "plain"
    assert all(draft[f] is None for f in FIGURE_FIELDS), "a drafting lane measured no KLD, PPL or top-1"
    assert "quality: 255 tokens scored against 'plain'" in run_doc["_stderr"]
    assert list(run_doc["_quality_dir"].iterdir()) == []


def test_self_draft_greedy_ids_equal_the_plain_lane(run_doc: dict[str, Any]) -> None:
    draft = lane(run_doc, "self-draft")
    assert draft["status"] == "ok", draft["flags"]
    q = draft["quality"]
    assert q["greedy"] is True and q["greedy_checked"] == 3  # warm-up + 2
    ids = [s["token_ids"] for s in draft["samples"]]
    assert all(ids) and ids == [s["token_ids"] for s in lane(run_doc, "plain")["samples"]]
    n = sum(len(x) for x in ids)
    assert n > 0 and q["greedy_tokens"] == q["greedy_same"] == n and q["divergence_token"] is None


def test_the_verdict_not_a_figure_in_table_store_and_plot_data(run_doc: dict[str, Any]) -> None:
    q = lane(run_doc, "self-draft")["quality"]
    n = q["greedy_tokens"]
    section = run_doc["_md"].split("Quality vs reference", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| self-draft |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:6] == ["–", "lossless (no KLD: speculative)", "–"]
    assert cells[6] == f"lossless: {n} of {n} greedy tokens identical against 'plain' (3 requests)"
    stored = {x["name"]: x for x in run_doc["_report"]["runs"][0]["lanes"]}
    assert stored["self-draft"]["quality"] == q
    assert [s["token_ids"] for s in stored["self-draft"]["samples"]] == [
        s["token_ids"] for s in lane(run_doc, "self-draft")["samples"]
    ]
    con = sqlite3.connect(run_doc["_db"])
    row = con.execute(
        "SELECT q.status, q.kld_mean, q.ppl, q.same_top1 FROM quality q JOIN lanes l ON l.id = q.lane_id "
        "WHERE l.name = 'self-draft'"
    ).fetchone()
    con.close()
    assert row == ("lossless", None, None, None)
    lanes = [LaneResult.from_dict(x) for x in run_doc["lanes"]]
    assert {p[0] for p in speed_quality_points(lanes)} == {"plain", "kv-q4"}
    assert [name for name, _ in left_out(lanes)] == ["self-draft"]


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


REFUSED = """
[defaults]
model = "{model}"
server_bin = "{server_bin}"
quality = true

[[lane]]
name = "plain"

[[lane]]
name = "lora-unapplied"
extra_args = ["--lora-init-without-apply"]
"""
LINE = (
    "lane 'lora-unapplied': field 'extra_args': --lora-init-without-apply: a llama-server option that "
    "llama-perplexity does not take"
)


@pytest.mark.parametrize(
    "command", [("run", *("--n-in", "16", "--n-out", "4")), ("tune", "--max-kld", "0.01", "--n-out", "4")]
)
def test_a_pairing_the_tool_cannot_reproduce_is_refused_before_anything_starts(
    tmp_path: Path, server_bin: Path, gemma_270m: Path, command: tuple[str, ...]
) -> None:
    lanes = lanes_file(tmp_path, REFUSED.format(model=gemma_270m, server_bin=server_bin))
    proc, left = run_cli(tmp_path, command[0], str(lanes), *command[1:], timeout=120)
    assert proc.returncode == 2 and not left
    assert LINE in one_error_line(proc)
    assert not list((tmp_path / "logs").glob("**/*.log")), "no server may have started"


def test_quality_of_another_vocabulary_is_refused(tmp_path: Path, gemma_270m: Path, smollm2: Path) -> None:
    logs = tmp_path / "logs"
    proc = lanebench("quality", str(gemma_270m), str(smollm2), "--out-dir", str(logs), timeout=120)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "field 'model': SmolLM2-135M-Instruct.Q4_1.gguf has another vocabulary than the reference" in line
    assert "the same token ids are not the same tokens" in line
    assert not (logs / "quality").exists() or not list((logs / "quality").iterdir())
