"""Every ``lanebench.…`` module named in code outside the package (scripts/, bench/, .ci/) exists.

A move inside the package once left ``scripts/setup.sh`` importing ``lanebench.models``; CI's set-up
then died after 13 s. This reads each file as text, so a shell line's ``python -c '…'`` counts too.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"\b(?:from|import)\s+(lanebench(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


def _files() -> list[Path]:
    found = [*ROOT.glob("scripts/*"), *ROOT.glob("bench/*.py"), *ROOT.glob(".ci/*")]
    return sorted(p for p in found if p.is_file())


def _references(path: Path) -> set[str]:
    return set(IMPORT.findall(path.read_text(encoding="utf-8", errors="replace")))


def test_the_scan_sees_the_setup_script() -> None:
    assert ROOT / "scripts" / "setup.sh" in _files()
    assert any(_references(p) for p in _files())


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_named_modules_exist(path: Path) -> None:
    missing = sorted(m for m in _references(path) if importlib.util.find_spec(m) is None)
    assert not missing, f"{path.relative_to(ROOT)} imports modules that do not exist: {missing}"


def test_a_missing_module_is_caught() -> None:
    refs = _references_of("from lanebench.models import cache_dir")
    assert refs == {"lanebench.models"}
    assert importlib.util.find_spec("lanebench.models") is None


def _references_of(text: str) -> set[str]:
    return set(IMPORT.findall(text))
