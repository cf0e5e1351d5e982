"""End to end: memory per lane on the real 270M with the real llama-server.

The GGUF estimate (made before start) is checked against the server log's own breakdown
(weights + KV + compute, draft buffers too) within 15% on the three built-in lanes (plain F16 KV,
Q8_0 KV, self-draft); the KV figure against shape arithmetic done here; peak RSS against the
log's host-side buffers. A lane whose ctx needs more memory than the machine has is refused
before any server starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli_helpers import FAKE_BIN, TINY, lanes_file, one_error_line, run_cli

from lanebench.memory.proc import mem_available_kib

pytestmark = pytest.mark.e2e

MIB = 2**20
# Gemma 3 270M: 18 layers (15 sliding-window, window 512), 1 KV head of 256 dims
LAYERS, KV_HEADS, HEAD_DIM = 18, 1, 256


def test_estimate_within_15_percent_of_the_server_log(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    out = tmp_path / "run.json"
    proc, left = run_cli(tmp_path, "run", *TINY, "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not left
    assert "Memory" in proc.stdout
    lanes = {lane["name"]: lane for lane in json.loads(out.read_text())["lanes"]}
    assert len(lanes) == 3
    for name, lane in lanes.items():
        m = lane["memory"]
        assert m is not None, name
        measured = m["weights"] + m["kv"] + m["compute"] + (m["draft"] or 0.0)
        assert abs(m["estimate"] - measured) <= 0.15 * measured, (name, m)
        assert m["peak_rss"] >= m["log_host"], (name, m)  # every buffer here is in host memory
        assert m["hwm"] >= m["peak_rss"] * 0.99, (name, m)
        per_slot = m["ctx"] // m["slots"]
        assert per_slot <= 512  # below the window: every layer keeps ctx cells
        type_bytes = 2.0 if "Q8_0" not in name else 34 / 32
        kv = m["ctx"] * LAYERS * KV_HEADS * HEAD_DIM * type_bytes * 2 / MIB
        assert m["kv"] == pytest.approx(kv, abs=0.01), (name, m)
        if "self-draft" in name:
            assert m["draft"] == pytest.approx(m["weights"] + m["kv"] + m["compute"], rel=0.01)
        else:
            assert m["draft"] is None


def test_lane_that_cannot_fit_is_refused_before_start(tmp_path: Path, gemma_270m: Path) -> None:
    free_mib = (mem_available_kib(Path("/proc/meminfo").read_text()) or 0) / 1024
    ctx = int(free_mib * MIB / (3 * 2 * HEAD_DIM * 2)) * 2  # the 3 full layers alone exceed it
    lanes = lanes_file(tmp_path, f'[[lane]]\nname = "too big"\nctx = {ctx}\nslots = 1\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, *FAKE_BIN)
    line = one_error_line(proc)
    assert line.startswith("lane 'too big': needs about ") and "MemAvailable" in line, line
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").glob("*.log"))
    assert not left
