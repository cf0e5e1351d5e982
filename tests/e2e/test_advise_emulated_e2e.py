"""advise by emulation on the real 270M, end to end: the lanes it runs, the cost it fits, the
predictions and the checks it reports. How close the predictions come is a timing question on a
shared machine, so it is measured by ``bench/advise_emulated.py`` (and docs/roofline.md), not
asserted here; what is asserted is what must hold whatever the machine's load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli_helpers import lanes_file, run_cli

from lanebench.analysis.specmodel import speedup

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
    fitted, plain = adv["fitted"], adv["plain_decode_tps"]
    assert plain > 0 and fitted["draft_cost"] is not None and fitted["draft_cost"] >= 0
    # the emulated profile came back: accepted tokens per step near E(0.6, 2) = 1.96
    assert fitted["tokens_per_step"] == pytest.approx(1 + 0.6 + 0.36, abs=0.25)
    # the model reproduces the fitted lane at its own profile, and predicts the grid from it
    assert plain * fitted["model_speedup"] == pytest.approx(fitted["decode_tps"], rel=0.05)
    assert sorted(int(b) for b in adv["grid"]) == [2, 3, 4, 5, 6]
    c = fitted["draft_cost"]
    assert adv["grid"]["3"]["0.9"] == pytest.approx(plain * speedup(0.9, 2, c))
    # every check was measured and compared with its prediction
    assert [x["alpha"] for x in adv["checks"]] == [0.3, 0.9]
    for x in adv["checks"]:
        assert x["measured_tps"] > 0 and x["predicted_tps"] == pytest.approx(
            plain * speedup(x["alpha"], 2, c)
        )
        assert x["error"] == pytest.approx(x["measured_tps"] / x["predicted_tps"] - 1)
