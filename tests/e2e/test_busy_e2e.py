"""End to end: `lanebench run` on the real 270M beside a CPU burner of the test's own.

The burner (a Python busy loop in its own process group) runs through the whole run, so every
repetition is taken on a busy machine: each must say so with the burner's load inside its
"others", re-measuring is bounded by --remeasure-busy, and the figures, having no quiet
repetition, are marked in the table and the JSON. Nothing is left running afterwards.

The lane takes as many threads as the machine has CPUs, so one burner passes the busy threshold
on any machine (busy.cpu.busy_threshold: no idle core, a quarter of a core). Nothing here asserts
that a run is quiet: other work may share this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.proctrack import TAG_VAR, new_tag, tagged

pytestmark = pytest.mark.e2e

REPS, EXTRA = 2, 1
HZ = os.sysconf("SC_CLK_TCK")


class Burner:
    """A CPU busy loop in its own process group; its CPU ticks sampled every 20 ms."""

    def __init__(self, env: dict[str, str]) -> None:
        code = "while True: pass"
        self.proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, env=env)
        self.ticks: list[tuple[float, int]] = []  # (epoch seconds, utime + stime)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        stat = Path(f"/proc/{self.proc.pid}/stat")
        while not self._stop.wait(0.02):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                return
            self.ticks.append((time.time(), int(fields[11]) + int(fields[12])))

    def cores(self, t0: float, t1: float) -> float | None:
        """The burner's CPU use between two epoch times (cores); None for too short a span."""
        inside = [(t, k) for t, k in self.ticks if t0 <= t <= t1]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.3:
            return None
        (a, ka), (b, kb) = inside[0], inside[-1]
        return (kb - ka) / HZ / (b - a)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def busy_run(tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("busy")
    (d / "lanes.toml").write_text(
        f'[[lane]]\nname = "plain"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n'
        f"threads = {os.cpu_count()}\n"
    )
    tag = new_tag()
    env = {**os.environ, TAG_VAR: tag}
    burner = Burner(env)
    try:
        time.sleep(0.5)  # running before lanebench looks
        argv = [sys.executable, "-m", "lanebench", "run", str(d / "lanes.toml"), "--n-in", "32"]
        argv += ["--n-out", "24", "--reps", str(REPS), "--aggregate", "2", "--remeasure-busy", str(EXTRA)]
        argv += ["--json", str(d / "out.json"), "--markdown", str(d / "out.md"), "--out-dir", str(d / "logs")]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    finally:
        burner.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((d / "out.json").read_text())
    return {"doc": doc, "md": (d / "out.md").read_text(), "stderr": proc.stderr, "burner": burner, "tag": tag}


def test_every_repetition_is_marked_busy_with_the_burners_load(busy_run: dict[str, Any]) -> None:
    lane = busy_run["doc"]["lanes"][0]
    burner: Burner = busy_run["burner"]
    singles = [s for s in lane["samples"] if s["kind"] == "single"]
    windows = [(s["t_start"], s["t_start"] + s["wall_s"], s["load"]) for s in singles]
    for rep in {s["rep"] for s in lane["samples"] if s["kind"] == "aggregate"}:
        streams = [s for s in lane["samples"] if s["kind"] == "aggregate" and s["rep"] == rep]
        batch = next(a for a in lane["aggregates"] if a["rep"] == rep)
        t0, t1 = min(s["t_start"] for s in streams), max(s["t_start"] + s["wall_s"] for s in streams)
        windows.append((t0, t1, batch["load"]))
    checked = 0
    for t0, t1, load in windows:
        assert load is not None and load["busy"] is True and load["why"].startswith("CPU"), load
        assert load["other_cores"] + load["steal_cores"] > load["threshold_cores"] == 0.25
        assert load["other_share"] > 0 and load["cores"] == os.cpu_count()
        used = burner.cores(t0, t1)
        if used is not None and used > 0.1:
            # the burner's CPU time is inside "others" (ticks are 10 ms, the sampler 20 ms apart)
            assert load["other_cores"] + load["steal_cores"] >= 0.8 * used - 0.15, (load, used)
            checked += 1
    assert checked >= 1, "no window long enough to see the burner's share"


def test_re_measuring_is_bounded_and_the_figures_are_marked(busy_run: dict[str, Any]) -> None:
    lane = busy_run["doc"]["lanes"][0]
    assert lane["status"] == "ok", lane["flags"]  # busy is a mark, not a failure
    assert len([s for s in lane["samples"] if s["kind"] == "single"]) == REPS + EXTRA
    assert len(lane["aggregates"]) == REPS + EXTRA
    busy = lane["busy"]
    assert busy["busy_windows"] == busy["windows"] == 2 * (REPS + EXTRA)
    assert busy["extra"] == 2 * EXTRA and busy["excluded"] == 0
    for key in ("prefill_tps", "decode_tps", "normalized_wall_s", "aggregate_tps"):
        assert busy["figures"][key] > 0.25, key
    md = busy_run["md"]
    row = next(line for line in md.splitlines() if line.startswith("| plain |"))
    decode = row.split(" | ")[3]
    assert decode.endswith(f"[busy: {busy['figures']['decode_tps']:.1f} cores]"), row
    assert "re-measuring found no quiet one" in md and "busy machine: 6 of 6 measured windows" in row


def test_the_run_warned_at_start_and_left_nothing_running(busy_run: dict[str, Any]) -> None:
    warning = [
        line for line in busy_run["stderr"].splitlines() if line.startswith("warning: the machine is busy")
    ]
    assert len(warning) == 1 and "used by other processes" in warning[0], busy_run["stderr"][-2000:]
    assert busy_run["burner"].proc.poll() is not None
    assert tagged(busy_run["tag"]) == []  # no llama-server, no burner
