"""``run --baseline`` on the real 270M: llama-bench beside each lane, and where the time goes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_helpers import lanes_file, run_cli


def test_run_baseline_adds_the_kernel_view(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    lanes = lanes_file(
        tmp_path,
        f"""
[defaults]
model = "{gemma_270m}"
server_bin = "{server_bin}"
slots = 1
threads = 2

[[lane]]
name = "plain"

[[lane]]
name = "self-draft"
draft = {{ kind = "model", block_size = 3 }}
""",
    )
    args = ("--n-in", "128", "--n-out", "32", "--reps", "2", "--aggregate", "0", "--baseline")
    out, md = tmp_path / "out.json", tmp_path / "run.md"
    proc, left = run_cli(
        tmp_path, "run", str(lanes), *args, "--json", str(out), "--markdown", str(md), timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    assert left == []
    by_name = {lane["name"]: lane for lane in json.loads(out.read_text())["lanes"]}
    plain, spec = by_name["plain"]["baseline"], by_name["self-draft"]["baseline"]
    assert plain["prefill_tps"] > 0 and plain["decode_tps"] > 0
    assert plain["n_prompt"] == 128 and plain["n_gen"] == 32 and "-ctk" in plain["argv"]
    # the speculative lane gets the same plain-model measurement (one llama-bench run), and says so
    assert spec["decode_tps"] == plain["decode_tps"] and "does not draft" in spec["note"]
    text = md.read_text()
    assert "Where the Time Goes" in text and "outside the engine's prompt timer" in text


def test_kernel_engine_client_order_or_an_inversion_flag(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    lanes = lanes_file(
        tmp_path,
        f'[[lane]]\nname = "plain"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\nslots = 1\n',
    )
    args = ("--n-in", "256", "--n-out", "32", "--reps", "3", "--aggregate", "0", "--baseline")
    out, md = tmp_path / "out.json", tmp_path / "run.md"
    proc, _ = run_cli(
        tmp_path, "run", str(lanes), *args, "--json", str(out), "--markdown", str(md), timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    (lane,) = json.loads(out.read_text())["lanes"]
    base, s, text = lane["baseline"], lane["summary"], md.read_text()
    for figure, kernel, sd, engine, client in (
        (
            "prefill",
            base["prefill_tps"],
            base["prefill_sd"],
            s["prefill_tps"]["median"],
            s["prefill_client_tps"]["median"],
        ),
        (
            "decode",
            base["decode_tps"],
            base["decode_sd"],
            s["decode_tps"]["median"],
            s["decode_client_tps"]["median"],
        ),
    ):
        if engine > kernel + 2 * sd:
            assert f"inversion: the engine's {figure}" in text
        # the client never sees a prompt processed faster than the engine timed it
        assert figure == "decode" or client <= engine * 1.01
