"""End to end: `lanebench sweep` and `lanebench tune` on the real llama-server and 270M model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def lanebench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture()
def lanes(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> Path:
    f = tmp_path / "lanes.toml"
    f.write_text(
        f'[defaults]\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\nthreads = 2\n\n'
        '[[lane]]\nname = "self"\ndraft = { kind = "model", block_size = 3 }\n'
    )
    return f


def test_sweep_dry_run_prints_the_plan(lanes: Path) -> None:
    proc = lanebench(
        "sweep", str(lanes), "--grid", "draft.block_size=2,4", "--grid", "kv=f16,q8_0", "--dry-run"
    )
    assert proc.returncode == 0, proc.stderr
    assert "plan: 4 lane(s)" in proc.stdout
    assert proc.stdout.count("--spec-draft-n-max 1") == 2 and proc.stdout.count("--spec-draft-n-max 3") == 2
    assert "(2 if the build takes per-request speculative fields)" in proc.stdout


def test_sweep_measures_every_point(lanes: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    proc = lanebench(
        "sweep",
        str(lanes),
        "--grid",
        "draft.block_size=2,4",
        "--n-in",
        "96",
        "--n-out",
        "16",
        "--reps",
        "1",
        "--aggregate",
        "0",
        "--json",
        str(out),
        "--out-dir",
        str(tmp_path / "logs"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Servers started: one shared server (started for the widest block) serves both points when the
    # build honours per-request speculative fields; b11434 compiles them out (#if 0), so there the
    # shared server serves B=4 and B=2 needs a server of its own. Counted twice: by what lanebench
    # says, and by the spawns its server logs record ("$ argv" once per start).
    said = re.search(
        r"servers started: (\d+) for 2 lane\(s\) \(per-request speculative fields: (\w+)\)", proc.stderr
    )
    assert said, proc.stderr[-2000:]
    spawns = sum(
        line.startswith("$ ")
        for log in (tmp_path / "logs").rglob("*.log")
        for line in log.read_text().splitlines()
    )
    assert int(said[1]) == spawns == (1 if said[2] == "honoured" else 2)
    doc = json.loads(out.read_text())
    by_name = {x["name"]: x for x in doc["lanes"]}
    assert set(by_name) == {"self [draft.block_size=2]", "self [draft.block_size=4]"}
    for name, n_max in (("self [draft.block_size=2]", "1"), ("self [draft.block_size=4]", "3")):
        lane = by_name[name]
        assert lane["status"] == "ok", lane["flags"]
        assert lane["lane"]["sweep"] == {"draft.block_size": int(n_max) + 1}
        argv = lane["argv"]
        assert argv[argv.index("--spec-draft-n-max") + 1] == n_max
        assert len(lane["per_position"]) <= int(n_max)
        assert all(s["timings"].get("draft_n", 0) > 0 for s in lane["samples"] if s["kind"] == "single")


def test_tune_finds_a_best_lane_with_less_work_than_the_grid(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    f = tmp_path / "plain.toml"
    f.write_text(
        f'[[lane]]\nname = "plain"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n'
        'flash_attn = "on"\nthreads = 2\n'
    )
    proc = lanebench(
        "tune",
        str(f),
        "--grid",
        "kv=f16,q8_0,q4_0",
        "--goal",
        "decode",
        "--n-in",
        "64",
        "--n-out",
        "32",
        "--reps",
        "1",
        "--remeasure-busy",  # exactly one rep per finalist, however busy the machine (tune has it now)
        "0",
        "--json",
        str(tmp_path / "tune.json"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "tune.json").read_text())
    assert proc.stdout.strip().splitlines()[-1].startswith(f"best lane: {report['best']} ")  # stdout: the log
    assert report["best"] in {f"plain [kv={k}]" for k in ("f16", "q8_0", "q4_0")}
    assert report["best_values"] == {"kv": report["best"].split("=")[1].rstrip("]")}
    # one rep per finalist: no spread to judge, so no winner is named; the tie-break picks one
    assert report["decided_by"] == "tie-break" and len(report["tied"]) == 1
    assert report["decision"].startswith(f"no measurable difference between {report['best']} and ")
    assert report["decision"].endswith("1 sample each)")
    assert len(report["rounds"]) == 2  # one halving round of 3, then the 2 finalists confirmed
    assert len(report["rounds"][0]["ranked"]) == 3 and len(report["rounds"][1]["ranked"]) == 2
    assert report["rounds"][0]["n_out"] == 16 and report["rounds"][1]["n_out"] == 32  # short, then full job
    assert report["log"][-1].startswith("stopped:")
