"""``run --attribute`` on the real 270M: each known suspect switched off on its own fresh server,
the server's own log confirming the switch, every request kept, no server left running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli_helpers import lanes_file, run_cli

# seven servers one after another (the lane's, the control twice, four suspects): minutes on a
# busy 2-core machine
pytestmark = pytest.mark.timeout(1800)

# what each server's log says at start (llama-server -lv 4) with the suspect on / off
SWITCHED = {
    "prompt_cache": ("prompt cache is enabled", "prompt cache is disabled"),
    "idle_slots": ("idle slots will be saved to prompt cache", None),
    "ctx_checkpoints": ("context checkpoints enabled", "context checkpoints disabled"),
    "samplers": ("-> top-k ->", "sampler chain: logits -> logit-bias -> temp-ext -> dist"),
}


def test_attribute_switches_one_suspect_per_fresh_server(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    lanes = lanes_file(
        tmp_path,
        f'[[lane]]\nname = "plain"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n'
        "slots = 1\nthreads = 2\n",
    )
    args = ("--n-in", "256", "--n-out", "32", "--reps", "2", "--aggregate", "0")
    out, md = tmp_path / "out.json", tmp_path / "run.md"
    proc, left = run_cli(
        tmp_path,
        "run",
        str(lanes),
        *args,
        "--attribute",
        "--attribute-reps",
        "2",
        "--json",
        str(out),
        "--markdown",
        str(md),
        timeout=1700,
    )
    assert proc.returncode == 0, proc.stderr
    assert left == []  # every server of the experiment was stopped
    (lane,) = json.loads(out.read_text())["lanes"]
    rec = lane["attribution"]
    arms = {a["name"]: a for a in rec["arms"]}
    assert [a["name"] for a in rec["arms"]] == ["control", *SWITCHED, "control_after"]
    assert rec["skipped"] == [["cache_reuse", "the lane does not enable it (--cache-reuse 0)"]]
    control_log = Path(arms["control"]["log_path"]).read_text(errors="replace")
    for name, (on, off) in SWITCHED.items():
        arm = arms[name]
        assert arm["error"] is None
        # the experiment's server ran with the switch: its argv ends with it, the control's lacks it
        assert arm["argv"][-len(arm["change"]) :] == arm["change"] and arm["change"][0] in arm["argv"]
        assert arm["change"][0] not in arms["control"]["argv"]
        log = Path(arm["log_path"]).read_text(errors="replace")
        assert on in control_log and on not in log, name
        assert off is None or off in log, name
        # every request kept: one warm-up and two measured, all whole
        kinds = [s["kind"] for s in arm["samples"]]
        assert kinds == ["warmup", "single", "single"] and all(s["ok"] for s in arm["samples"])
        assert all(s["timings"]["prompt_n"] == 256 for s in arm["samples"])
    # greedy over temperature alone picks the same tokens as the full chain at temperature 0
    assert rec["same_tokens"]["samplers"] is True and rec["same_tokens"]["prompt_cache"] is True
    # two requests a side are too few for the cause rule: nothing is named, every effect says so
    assert all(e["moved"] is None for e in rec["effects"])
    text = md.read_text()
    assert "### Attribution" in text and "host-RAM prompt cache (-cram 0)" in text
    assert "cache_reuse: not tested (the lane does not enable it (--cache-reuse 0))" in text
    assert "unattributed (4 suspect(s) tested with 2 request(s) each, fewer than the 3" in text
    assert ") saved " not in text


def test_dry_run_names_the_experiments_servers(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    lanes = lanes_file(
        tmp_path,
        f'[defaults]\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n\n'
        '[[lane]]\nname = "plain"\n\n[[lane]]\nname = "no cache"\ncache_ram = 0\n'
        'extra_args = ["--cache-reuse", "256"]\n',
    )
    proc, left = run_cli(tmp_path, "run", str(lanes), "--dry-run", "--attribute", "--attribute-reps", "3")
    assert proc.returncode == 0, proc.stderr
    assert left == []
    out = " ".join(proc.stdout.split())  # rich wraps long lines
    assert (
        "attribution: plain: 6 server(s) of 1 + 3 requests: control, -cram 0, --no-cache-idle-slots, "
        "-ctxcp 0, --samplers temperature, control; not cache_reuse" in out
    )
    assert "-np 2 -cram 0 --metrics" in out and "-fa auto --cache-reuse 256" in out  # the lane's argv
    assert "attribution: no cache: 5 server(s) of 1 + 3 requests: control, -ctxcp 0, --cache-reuse 0" in out
    assert "not prompt_cache: the lane runs without it (cache_ram 0)" in out
