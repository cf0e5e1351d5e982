"""``run --baseline`` on the real 270M: llama-bench beside each lane, and where the time goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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
    # the server decodes after the 128-token prompt: so does the kernel view (llama-bench -d)
    assert (plain["prefill_depth"], plain["decode_depth"]) == (0, 128)
    prefill, decode = plain["argv"], plain["decode_argv"]
    assert prefill[prefill.index("-p") + 1 :][:5] == ["128", "-n", "0", "-d", "0"]
    assert decode[decode.index("-p") + 1 :][:5] == ["0", "-n", "32", "-d", "128"]
    assert len(plain["decode_samples"]) == 3  # llama-bench's rows of the tg32 @ d128 test
    # the speculative lane gets the same plain-model measurement (one llama-bench run), and says so
    assert spec["decode_tps"] == plain["decode_tps"] and "does not draft" in spec["note"]
    text = md.read_text()
    assert "Where the Time Goes" in text and "outside the engine's prompt timer" in text
    assert "kernel = llama-bench pp128 @ d0 and tg32 @ d128 with the lane's settings" in text
    assert "HTTP, slot scheduling" not in text


def test_kernel_engine_client_order_or_an_inversion_flag(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    lanes = lanes_file(
        tmp_path,
        f'[[lane]]\nname = "plain"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\nslots = 1\n',
    )
    args = (
        "--n-in",
        "256",
        "--n-out",
        "32",
        "--reps",
        "3",
        "--aggregate",
        "0",
        "--baseline",
        "--remeasure-busy",
        "0",
    )
    out, md = tmp_path / "out.json", tmp_path / "run.md"
    proc, _ = run_cli(
        tmp_path, "run", str(lanes), *args, "--json", str(out), "--markdown", str(md), timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    (lane,) = json.loads(out.read_text())["lanes"]
    base, s, text = lane["baseline"], lane["summary"], md.read_text()
    for figure, kernel, sd, engine in (
        ("prefill", base["prefill_tps"], base["prefill_sd"], s["prefill_tps"]["median"]),
        ("decode", base["decode_tps"], base["decode_sd"], s["decode_tps"]["median"]),
    ):
        # an engine faster than its kernels beyond llama-bench's noise is flagged, and only then
        assert (f"inversion: the engine's {figure}" in text) == (engine > kernel + 2 * sd), figure
    # the client never sees a prompt processed faster than the engine timed it: per request, its
    # time to first token is at least the engine's prompt time
    singles = [r for r in lane["samples"] if r["kind"] == "single" and r["ok"]]
    assert len(singles) == 3
    for r in singles:
        assert 1000 * r["ttft_s"] >= r["timings"]["prompt_ms"], r
    # the client's token arrivals and the engine's timer clock the same decode
    assert s["decode_client_tps"]["median"] == pytest.approx(s["decode_tps"]["median"], rel=0.1)
