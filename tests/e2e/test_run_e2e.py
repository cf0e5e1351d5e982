"""End to end: `lanebench run` on a real llama-server with the real Gemma 3 270M GGUF.

One module-scoped run measures three lanes (plain, the model drafting for itself, and a draft of
another vocabulary with the pre-start check off); the tests read its JSON and markdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

N_IN, N_OUT = 160, 24


@pytest.fixture(scope="module")
def run_doc(
    tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path, smollm2: Path
) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("run")
    lanes = d / "lanes.toml"
    lanes.write_text(
        f"""
[defaults]
model = "{gemma_270m}"
server_bin = "{server_bin}"
threads = 2

[[lane]]
name = "plain"

[[lane]]
name = "self-draft"
draft = {{ kind = "model", path = "{gemma_270m}", block_size = 3 }}

[[lane]]
name = "other-vocab"
draft = {{ kind = "model", path = "{smollm2}", block_size = 3 }}
"""
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lanebench.cli.main",
            "run",
            str(lanes),
            "--n-in",
            str(N_IN),
            "--n-out",
            str(N_OUT),
            "--reps",
            "2",
            "--aggregate",
            "2",
            "--remeasure-busy",  # exactly the job's requests, however busy the machine (test_busy_e2e)
            "0",
            "--no-check",
            "--json",
            str(d / "out.json"),
            "--markdown",
            str(d / "out.md"),
            "--out-dir",
            str(d / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((d / "out.json").read_text())
    doc["_markdown"] = (d / "out.md").read_text()
    doc["_stderr"] = proc.stderr
    return doc


def lane(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(x for x in doc["lanes"] if x["name"] == name)


def test_plain_lane_has_positive_rates_and_load_time(run_doc: dict[str, Any]) -> None:
    plain = lane(run_doc, "plain")
    assert plain["status"] == "ok", plain["flags"]
    assert plain["load_s"] > 0
    s = plain["summary"]
    for key in ("prefill_tps", "decode_tps", "prefill_client_tps", "decode_client_tps", "aggregate_tps"):
        assert s[key]["median"] > 0, key
        assert s[key]["min"] <= s[key]["median"] <= s[key]["max"]
    assert s["decode_tps"]["n"] == 2
    expect = N_IN / s["prefill_tps"]["median"] + N_OUT / s["decode_tps"]["median"]
    assert s["normalized_wall_s"]["min"] <= expect * 1.5


def test_prompts_are_exact_length_and_distinct(run_doc: dict[str, Any]) -> None:
    samples = lane(run_doc, "plain")["samples"]
    assert all(x["timings"]["prompt_n"] == N_IN for x in samples if x["ok"])
    assert all(x["timings"]["predicted_n"] == N_OUT for x in samples if x["ok"])
    singles = [x for x in samples if x["kind"] == "single"]
    assert len({x["content_sha"] for x in singles}) == len(singles), "each request must get its own slice"


def test_every_raw_sample_is_kept(run_doc: dict[str, Any]) -> None:
    plain = lane(run_doc, "plain")
    kinds = [x["kind"] for x in plain["samples"]]
    assert kinds.count("warmup") == 1 and kinds.count("single") == 2 and kinds.count("aggregate") == 4
    assert len(plain["aggregates"]) == 2 and all(a["streams"] == 2 for a in plain["aggregates"])
    assert run_doc["run"]["job"]["n_in"] == N_IN
    build = next(iter(run_doc["run"]["builds"].values()))
    assert build["version_text"].startswith("version:") and build["speculative"] == "upstream"
    assert run_doc["run"]["host"]["cpus"] >= 1


def test_drafting_lane_drafts_and_accepts(run_doc: dict[str, Any]) -> None:
    sd = lane(run_doc, "self-draft")
    assert sd["status"] == "ok", sd["flags"]
    singles = [x for x in sd["samples"] if x["kind"] == "single"]
    assert all(x["timings"].get("draft_n", 0) > 0 for x in singles)
    acc = sd["summary"]["acceptance"]["median"]
    assert 0 < acc <= 1
    assert sd["summary"]["mean_accepted_length"]["median"] >= 1
    assert 1 <= len(sd["per_position"]) <= 2  # block size 3 drafts 2 tokens a round
    assert (
        "--spec-draft-n-max" in sd["argv"] and sd["argv"][sd["argv"].index("--spec-draft-n-max") + 1] == "2"
    )


def test_greedy_output_identical_with_and_without_draft(run_doc: dict[str, Any]) -> None:
    def shas(name: str) -> list[str]:
        return [x["content_sha"] for x in lane(run_doc, name)["samples"] if x["kind"] in ("warmup", "single")]

    assert shas("plain") == shas("self-draft")


def test_incompatible_vocabulary_draft_is_flagged(run_doc: dict[str, Any]) -> None:
    other = lane(run_doc, "other-vocab")
    assert other["status"] == "flagged"
    assert any("drafted nothing" in f for f in other["flags"])
    assert all("draft_n" not in x["timings"] for x in other["samples"] if x["ok"])
    assert "none drafted" in run_doc["_markdown"]
    assert "other-vocab" in run_doc["_stderr"] and "flagged" in run_doc["_stderr"]


def test_markdown_has_the_seed_tables(run_doc: dict[str, Any]) -> None:
    md = run_doc["_markdown"]
    assert "### Latest Measured Numbers" in md and "### Draft Acceptance" in md
    assert f"Normalized wall, {N_IN}-in/{N_OUT}-out" in md
    assert "| self-draft |" in md


def test_the_run_is_in_the_store_and_advise_reads_it_by_id(run_doc: dict[str, Any]) -> None:
    run_id = run_doc["run"]["run_id"]
    proc = subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", "advise", run_id, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    advice = {a["lane"]: a for a in json.loads(proc.stdout)["advice"]}
    assert set(advice) >= {"self-draft"}
    assert 0 < advice["self-draft"]["alpha"] <= 1


def test_run_refuses_a_draft_of_another_vocabulary_before_starting(
    tmp_path: Path, server_bin: Path, gemma_270m: Path, smollm2: Path
) -> None:
    lanes = tmp_path / "lanes.toml"
    lanes.write_text(
        f'[[lane]]\nname = "other-vocab"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n'
        f'draft = {{ kind = "model", path = "{smollm2}" }}\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", "run", str(lanes), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "lane 'other-vocab': draft check:" in proc.stderr and "vocab" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
