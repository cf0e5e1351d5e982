"""The tiers as documented: CI runs README's test command, which runs every tier; README's
Development section says how to run each tier; pyproject.toml registers each tier's marker."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("unit", "integration", "e2e")


def test_ci_runs_readmes_test_command_over_every_tier() -> None:
    found = re.search(
        r"scripts/setup\.sh --test && (python3 -m pytest[^\n`]*)", (ROOT / "README.md").read_text()
    )
    assert found, "README's test command (after scripts/setup.sh --test) is missing"
    command = found[1].strip()
    args = command.split("pytest", 1)[1].split()
    assert "-m" not in args and "-k" not in args, command  # every tier, no selection
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert [line for line in ci if not line.startswith("#")] == [command]


def test_readme_says_how_to_run_each_tier_and_pyproject_registers_it() -> None:
    development = (ROOT / "README.md").read_text().split("## Development", 1)[1].split("\n## ", 1)[0]
    for tier in TIERS:
        assert f"python3 -m pytest -q -m {tier} " in development, tier
        assert f"`tests/{tier}/`" in development, tier
    assert 'python3 -m pytest -q -m "not e2e"' in development
    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert {marker.split(":")[0] for marker in pytest_ini["markers"]} >= set(TIERS)
