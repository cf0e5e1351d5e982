"""End to end: ``lanebench run`` maps a small envelope of the real Gemma 3 270M on a real
llama-server and reports it: the markdown has the lane's envelope table (a row per cell) and the
prefill-included batch throughput in a table of its own, the plots are PNG files, and ``--json``
carries every cell. No figure is asserted: this machine's speeds mean nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli_helpers import lanes_file, run_cli

pytestmark = pytest.mark.e2e

PLOTS = ("envelope-decode-vs-depth-1.png", "envelope-aggregate-vs-concurrency-1.png",
         "envelope-ttft-vs-concurrency-1.png")  # fmt: skip


def section(md: str, title: str) -> list[str]:
    """The table rows under ``### title`` (header and rule left out)."""
    table = md.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return table[2:]


def test_run_reports_the_envelope_in_markdown_plots_and_json(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    lanes = lanes_file(
        tmp_path, f'[[lane]]\nname = "plain"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n'
    )
    md, plots, out = tmp_path / "report.md", tmp_path / "plots", tmp_path / "run.json"
    proc, left = run_cli(
        tmp_path, "run", str(lanes), "--n-in", "32", "--n-out", "16", "--reps", "2", "--warmup", "1",
        "--depth", "0,1024", "--concurrency", "1,2", "--markdown", str(md), "--plots", str(plots),
        "--json", str(out), timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not left, f"processes left running: {left}"
    text = md.read_text(encoding="utf-8")
    rows = section(text, "Envelope: plain")
    assert [tuple(c.strip() for c in r.split("|")[1:3]) for r in rows] == [
        ("0", "1"), ("0", "2"), ("1,024", "1"), ("1,024", "2")
    ]  # fmt: skip
    for r in rows:  # every cell measured: decode per stream and the steady aggregate have a median
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert " tok/s" in cells[3] and " tok/s" in cells[4], r
    assert len(section(text, "Batch Throughput, Prefill Included")) == 4
    for name in PLOTS:
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    (lane,) = json.loads(out.read_text(encoding="utf-8"))["lanes"]
    assert [(c["depth"], c["concurrency"]) for c in lane["envelope"]] == [
        (0, 1),
        (0, 2),
        (1024, 1),
        (1024, 2),
    ]
    assert all(c["decode"]["n"] == 2 * c["concurrency"] for c in lane["envelope"])
