"""``run --attribute``'s option, refused as one line before any server starts (a fake build)."""

from __future__ import annotations

from pathlib import Path

from tests.cli_helpers import FAKE_BIN, one_error_line, run_cli


def test_attribute_reps_below_one_is_one_line(tmp_path: Path) -> None:
    proc, _ = run_cli(tmp_path, "run", *FAKE_BIN, "--attribute", "--attribute-reps", "0")
    assert one_error_line(proc) == "--attribute-reps: expected an integer >= 1, got 0"
