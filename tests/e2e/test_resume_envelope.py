"""Ctrl-C inside an envelope lane, then ``--resume``: the cells the lane had finished are kept
(the same records, not measured again), only the cells left are measured, each cell ends with
exactly its batches, and the lane says how many cells an earlier server measured.

A real ``lanebench run`` on the real 270M as a subprocess; SIGINT once the store holds a sample
of the third cell (depth 512, one stream), so at least the two cells at depth 0 are complete.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lanebench.analysis.finished_cells import cell_order
from lanebench.records.lane import LaneResult
from lanebench.store import open_store

pytestmark = pytest.mark.e2e

REPS = 3
JOB = ["--depth", "0,512", "--concurrency", "1,2", "--n-in", "32", "--n-out", "16", "--reps", str(REPS),
       "--warmup", "1", "--aggregate", "0", "--remeasure-busy", "0"]  # fmt: skip


def argv(lanes: Path, db: Path, out: Path, *extra: str) -> list[str]:
    cli = [sys.executable, "-m", "lanebench.cli.main", "run", str(lanes)]
    return [*cli, "--db", str(db), "--out-dir", str(out), *JOB, *extra]


def third_cell_started(db: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT COUNT(*) FROM samples WHERE kind = 'cell' AND depth = 512").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return bool(row and row[0] > 0)


def test_an_interrupted_envelope_lane_resumes_at_its_cells(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    lanes, db, out = tmp_path / "lanes.toml", tmp_path / "r.sqlite", tmp_path / "out"
    lanes.write_text(
        f'[[lane]]\nname = "plain"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\nthreads = 2\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "LANEBENCH_DB"}
    proc = subprocess.Popen(argv(lanes, db, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 480
        while not third_cell_started(db):
            assert proc.poll() is None, (
                f"lanebench ended before the third cell: {proc.stderr.read()[-2000:]!r}"
            )  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the third cell never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    stopped = proc.stderr.read()[-3000:] if proc.stderr else ""  # a failure below says what the run did
    assert proc.returncode != 0, f"the run was not interrupted: {stopped!r}"

    store = open_store(str(db))
    (run,) = store.list_runs()
    (before,) = store.load_lanes(run["run_id"])
    job = store.get_run(run["run_id"]).job
    order = cell_order(job)
    measured = {(r.depth, r.concurrency) for r in before.samples if r.kind == "cell"}
    last = max(order.index(k) for k in measured)
    kept = [k for k in order[:last] if k in measured]
    assert len(kept) >= 2, (measured, stopped)  # both depth-0 cells were done before depth 512 began

    report = [sys.executable, "-m", "lanebench.cli.main", "report", run["run_id"], "--db", str(db)]
    shown = subprocess.run(report, env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "### Envelope: plain (failed: the cells it measured)" in shown.stdout
    assert f"never finished: the {len(kept)} of {len(order)} envelope cells it finished" in shown.stdout
    for depth, streams in kept:  # the finished cells, as the store holds them
        assert f"| {depth:,} | {streams} | " in shown.stdout

    # the run as if begun on another machine: refused before anything starts, the store untouched
    elsewhere = tmp_path / "elsewhere.sqlite"
    elsewhere.write_bytes(db.read_bytes())
    con = sqlite3.connect(elsewhere)
    con.execute("UPDATE runs SET host = json_set(host, '$.kernel', '0.0-elsewhere')")
    con.commit()
    con.close()
    refused = subprocess.run([*argv(lanes, elsewhere, out, "--resume", run["run_id"])], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "kernel was '0.0-elsewhere'" in refused.stderr and "Traceback" not in refused.stderr
    assert len(open_store(str(elsewhere)).load_lanes(run["run_id"])[0].samples) == len(before.samples)

    resumed = subprocess.run(argv(lanes, db, out, "--resume", run["run_id"]), env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    (after,) = store.load_lanes(run["run_id"])
    assert f"resumed: {len(kept)} of {len(order)} cells kept from the interrupted run" in "; ".join(
        after.flags
    ), (after.flags, measured, stopped)

    def cell_times(lane: LaneResult, key: tuple[int, int]) -> list[float]:
        return sorted(r.t_start for r in lane.samples if r.kind == "cell" and (r.depth, r.concurrency) == key)

    for key in kept:  # the same records: not measured again
        assert cell_times(after, key) == cell_times(before, key), key
    for depth, streams in order:  # every cell exactly once: its batches, each of its streams
        assert len(cell_times(after, (depth, streams))) == REPS * streams, (depth, streams)
        batches = [a for a in after.aggregates if (a.depth, a.streams) == (depth, streams)]
        assert len(batches) == REPS, (depth, streams)
    fills = sorted(r.depth for r in after.samples if r.kind == "fill")
    assert fills == [512, 512], "depth 512 filled once (2 slots), whether kept or anew"
    cells = {(c.depth, c.concurrency): c for c in after.envelope}
    assert set(cells) == set(order)
    # the lane's log holds both servers' runs: its memory is the last one's (no second model read
    # as a draft), and the log's prompt-cache work is laid beside the cells that server measured
    assert after.memory is not None and after.memory.draft is None and after.memory.weights
    assert all(cells[k].cache_s is None for k in kept)
    assert all(cells[k].cache_s is not None for k in order if k not in kept)
    held = cells[(512, 1)].reuse_min  # the restarted server was filled again: the prefix is held
    assert held is not None and held >= 256, held
