"""kill -9 in the middle of a real run, then ``--resume``: every lane ends measured exactly once,
the samples committed before the kill are kept, and no llama-server outlives lanebench.

Drives the CLI as a user would: ``lanebench run LANES.toml --db FILE`` as a subprocess,
SIGKILL once the store holds a finished lane and a lane in progress with samples, then
``lanebench run LANES.toml --db FILE --resume RUN_ID``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import need

from lanebench.orchestration.plan import requests_per_lane
from lanebench.store import open_store

pytestmark = pytest.mark.e2e

TAG_VAR = "LANEBENCH_TEST_TAG"
LANES = ("plain f16", "q8 kv + fa", "one slot")
# --remeasure-busy 0: every lane takes exactly the job's requests, however busy the machine
JOB_ARGS = [
    "--n-in",
    "64",
    "--n-out",
    "8",
    "--reps",
    "2",
    "--warmup",
    "1",
    "--aggregate",
    "2",
    "--remeasure-busy",
    "0",
]


def tagged_servers(tag: str) -> list[int]:
    """Live llama-server processes whose environment carries our tag (inherited from lanebench)."""
    needle = f"{TAG_VAR}={tag}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and comm == "llama-server" and state != "Z":
            pids.append(int(entry.name))
    return pids


def progress(db: Path) -> dict[str, Any]:
    """Finished lanes and samples of unfinished lanes, read as another process would."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            run = con.execute("SELECT run_id FROM runs").fetchone()
            lanes = con.execute(
                "SELECT l.name, l.status, COUNT(s.id) FROM lanes l LEFT JOIN samples s ON s.lane_id = l.id "
                "GROUP BY l.id"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return {"run_id": None, "finished": [], "in_progress": {}}
    return {
        "run_id": run[0] if run else None,
        "finished": [n for n, st, _ in lanes if st in ("ok", "flagged", "failed")],
        "in_progress": {n: c for n, st, c in lanes if st == "running"},
    }


def lanebench_argv(lanes: Path, db: Path, out: Path, *extra: str) -> list[str]:
    base = [sys.executable, "-m", "lanebench.cli.main", "run", str(lanes), "--db", str(db)]
    return [*base, *JOB_ARGS, "--out-dir", str(out), *extra]


@pytest.fixture
def lanes_file(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> Path:
    help_text = subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", "run", "--help"], capture_output=True, text=True
    ).stdout
    if "--resume" not in help_text or "--db" not in help_text:
        need("lanebench run has no --db/--resume yet")
    f = tmp_path / "lanes.toml"
    f.write_text(
        f'[defaults]\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\nthreads = 2\n\n'
        f'[[lane]]\nname = "{LANES[0]}"\n\n'
        f'[[lane]]\nname = "{LANES[1]}"\nkv = "q8_0"\nflash_attn = "on"\n\n'
        f'[[lane]]\nname = "{LANES[2]}"\nslots = 1\n'
    )
    return f


def test_kill_9_mid_run_then_resume_measures_every_lane_once(lanes_file: Path, tmp_path: Path) -> None:
    db, out, tag = tmp_path / "results.sqlite", tmp_path / "out", uuid.uuid4().hex
    env = {**os.environ, TAG_VAR: tag}
    env.pop("LANEBENCH_DB", None)
    proc = subprocess.Popen(
        lanebench_argv(lanes_file, db, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        state = _wait_for_mid_lane(proc, db)
        servers = tagged_servers(tag)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert servers, "expected a llama-server running at the moment of the kill"
    assert _gone(tag), f"llama-server outlived lanebench: {tagged_servers(tag)}"

    run_id = state["run_id"]
    store = open_store(str(db))
    before = {lane.name: lane for lane in store.load_lanes(run_id)}
    (unfinished,) = state["in_progress"]
    assert before[unfinished].status == "failed" and len(before[unfinished].samples) >= 1  # nothing lost
    first = state["finished"][0]

    resumed = subprocess.run(
        lanebench_argv(lanes_file, db, out, "--resume", run_id),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _gone(tag)

    lanes = store.load_lanes(run_id)
    assert sorted(lane.name for lane in lanes) == sorted(LANES)  # each exactly once
    assert all(lane.status in ("ok", "flagged") for lane in lanes), [(x.name, x.error) for x in lanes]
    job = store.get_run(run_id).job
    for lane in lanes:
        assert len(lane.samples) == requests_per_lane(job), lane.name
        assert len(lane.aggregates) == job.reps, lane.name
    kept = next(x for x in lanes if x.name == first)
    assert [r.t_start for r in kept.samples] == [r.t_start for r in before[first].samples]  # not re-measured
    runs = store.list_runs()
    assert [(r["run_id"], r["lanes"], r["status"]) for r in runs] == [(run_id, 3, "done")]
    _report_from_the_real_run(db, run_id)


def _wait_for_mid_lane(proc: subprocess.Popen[bytes], db: Path, timeout_s: float = 480) -> dict[str, Any]:
    """Poll the store until one lane is finished and another has committed samples."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.fail(
                f"lanebench ended (rc {proc.returncode}) before it could be killed mid-lane:\n{err[-2000:]}"
            )
        state = progress(db)
        if state["finished"] and any(c >= 1 for c in state["in_progress"].values()):
            return state
        time.sleep(0.1)
    pytest.fail(f"no finished lane plus a lane in progress within {timeout_s} s: {progress(db)}")


def _gone(tag: str, timeout_s: float = 15) -> bool:
    deadline = time.monotonic() + timeout_s
    while tagged_servers(tag):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _report_from_the_real_run(db: Path, run_id: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", "report", run_id, "--db", str(db), "--format", "md"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in LANES:
        assert f"| {name} |" in proc.stdout
    assert "gemma-3-270m-q4_k_m.gguf | 253,113,024 bytes / 0.24 GiB | gemma3 | Q4_K_M" in proc.stdout
