"""advise by emulation on the real 270M: the draft's cost fitted at one emulated acceptance
predicts decode at two others (the issue's 10%, widened by the measured runs' own spread on a
shared machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli_helpers import lanes_file, run_cli

pytestmark = pytest.mark.timeout(1200)


def test_cost_fitted_once_predicts_other_profiles(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    lanes = lanes_file(
        tmp_path,
        f"""
[[lane]]
name = "self-draft B=3"
model = "{gemma_270m}"
server_bin = "{server_bin}"
slots = 1
threads = 2
draft = {{ kind = "model", block_size = 3 }}
""",
    )
    args = ("--profile", "0.6", "--check", "0.3,0.9", "--n-in", "64", "--n-out", "160", "--reps", "2")
    proc, left = run_cli(tmp_path, "advise", str(lanes), *args, "--json", timeout=1100)
    assert proc.returncode == 0, proc.stderr
    assert left == []
    adv = json.loads(proc.stdout)
    assert adv["fitted"]["draft_cost"] is not None and adv["plain_decode_tps"] > 0
    assert sorted(int(b) for b in adv["grid"]) == [2, 3, 4, 5, 6]
    assert [c["alpha"] for c in adv["checks"]] == [0.3, 0.9]
    for c in adv["checks"]:
        spread = (c["measured_max"] - c["measured_min"]) / c["measured_tps"]
        assert abs(c["error"]) <= 0.10 + spread, c
