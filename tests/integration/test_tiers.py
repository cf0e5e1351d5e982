"""The tiers guard themselves: pytest run on a small project with this repository's conftest.py,
holding a test of each tier and misplaced tests that reach for a real engine outside tests/e2e/
(by the ``server_bin`` fixture, by discovery in this process, through the CLI in a subprocess).
Each misplaced test must fail, naming tests/e2e/, before or instead of starting any engine."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

MISPLACED = """
import subprocess
import sys
from pathlib import Path

import pytest

from lanebench.engines.llamacpp.discovery import find_server_bin


def test_asks_for_the_engine(server_bin: Path) -> None:
    subprocess.run([str(server_bin), "--version"], timeout=60)


def test_finds_the_engine_by_itself() -> None:
    subprocess.run([str(find_server_bin()), "--version"], timeout=60)


def test_the_cli_finds_the_engine(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + bytes(60))  # passes the magic check
    (tmp_path / "lanes.toml").write_text('[[lane]]\\nname = "a"\\nmodel = "m.gguf"\\n')
    argv = [sys.executable, "-m", "lanebench", "run", "lanes.toml", "--dry-run", "--no-db"]
    subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=120)


@pytest.mark.e2e
def test_marked_e2e_by_hand() -> None:
    pass
"""

PLACED_E2E = """
import os


def test_e2e_sees_no_tripwire() -> None:
    assert "lanebench-tripwire-" not in os.environ["PATH"] + os.environ.get("PYTHONPATH", "")
"""

PURE_UNIT = """
from lanebench.engines.llamacpp.discovery import find_server_bin


def test_unit_finds_only_the_tripwire() -> None:
    assert "lanebench-tripwire-" in str(find_server_bin())
"""

INI = "[pytest]\nmarkers =\n    unit: u\n    integration: i\n    e2e: e\n"


def _project(root: Path) -> Path:
    files = {
        "pytest.ini": INI,
        "tests/__init__.py": "",
        "tests/conftest.py": CONFTEST.read_text(),
        "tests/integration/test_misplaced.py": MISPLACED,
        "tests/e2e/test_placed.py": PLACED_E2E,
        "tests/unit/test_pure.py": PURE_UNIT,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``root``, in this environment less this session's own tripwire (the inner
    session arms its own, for its unit and integration tests only)."""
    env = dict(os.environ)
    for var in ("PATH", "PYTHONPATH"):
        kept = [p for p in env.get(var, "").split(os.pathsep) if p and "lanebench-tripwire-" not in p]
        env[var] = os.pathsep.join(kept)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _outcomes(xml: Path) -> dict[str, tuple[str, str]]:
    """Test name -> (outcome, message and text of its failure or error)."""
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        bad = [c for c in case if c.tag in ("failure", "error", "skipped")]
        text = " ".join(f"{c.get('message', '')} {c.text or ''}" for c in bad)
        out[case.get("name", "")] = (bad[0].tag if bad else "passed", text)
    return out


def test_a_test_reaching_for_a_real_engine_outside_e2e_fails(tmp_path: Path) -> None:
    root = _project(tmp_path / "project")
    proc = _pytest(root, "--junitxml", str(tmp_path / "out.xml"), "tests")
    got = _outcomes(tmp_path / "out.xml")
    assert set(got) == {
        "test_asks_for_the_engine",
        "test_finds_the_engine_by_itself",
        "test_the_cli_finds_the_engine",
        "test_marked_e2e_by_hand",
        "test_e2e_sees_no_tripwire",
        "test_unit_finds_only_the_tripwire",
    }, proc.stdout[-3000:]
    # refused before its fixtures are set up: the fixture's engine never ran
    outcome, text = got["test_asks_for_the_engine"]
    assert outcome == "error" and "asks for server_bin (a real engine)" in text, got
    assert "belongs in tests/e2e/" in text
    # found the tripwire instead of the engine, in this process and in the CLI's
    outcome, text = got["test_finds_the_engine_by_itself"]
    assert outcome == "failure" and "llama-server --version" in text and "tests/e2e/" in text, got
    outcome, text = got["test_the_cli_finds_the_engine"]
    assert outcome == "failure" and "llama-server --help" in text and "tests/e2e/" in text, got
    outcome, text = got["test_marked_e2e_by_hand"]
    assert outcome == "error" and "marked e2e by hand: its folder sets its tier" in text, got
    # no tripwire in the e2e tier; the unit tier, like integration, finds only the tripwire
    assert got["test_e2e_sees_no_tripwire"][0] == "passed", got
    assert got["test_unit_finds_only_the_tripwire"][0] == "passed", got


def test_each_tier_is_selected_by_its_folders_marker(tmp_path: Path) -> None:
    """The folder's marker selects; a hand-written e2e mark outside tests/e2e/ adds to it (such a
    test fails whenever it runs, as in CI's run of every tier)."""
    root = _project(tmp_path / "project")
    misplaced = {"test_asks_for_the_engine", "test_finds_the_engine_by_itself"}
    misplaced.add("test_the_cli_finds_the_engine")
    for marker, names in (
        ("integration", {*misplaced, "test_marked_e2e_by_hand"}),
        ("unit", {"test_unit_finds_only_the_tripwire"}),
        ("e2e", {"test_e2e_sees_no_tripwire", "test_marked_e2e_by_hand"}),
        ("not e2e", {*misplaced, "test_unit_finds_only_the_tripwire"}),
    ):
        proc = _pytest(root, "--collect-only", "-m", marker, "tests")
        ids = [line for line in proc.stdout.splitlines() if "::" in line]
        assert {i.split("::")[1] for i in ids} == names, (marker, proc.stdout)
