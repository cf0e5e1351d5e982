"""A short, bounded fuzz run over every target: no traceback, hang or memory blow-up.

The long run is ``python bench/fuzz.py --per-target 10000``; this one keeps CI honest.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from lanebench.errors import BadInput
from tests.fuzz.harness import Target, all_targets, fuzz, summary

INPUTS = 300
SEED = 20261130
TARGETS = all_targets()


def test_there_are_targets() -> None:
    assert TARGETS, "tests.fuzz found no targets"
    assert len({t.name for t in TARGETS}) == len(TARGETS), "two targets share a name"


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_short_fuzz_run(target: Target, tmp_path: Path) -> None:
    result = fuzz(target, INPUTS, seed=SEED, out_dir=tmp_path, jobs=2)
    assert sum(result.counts.values()) == INPUTS
    assert result.bad == 0, f"{dict(result.counts)}; reproducers in {tmp_path}\n{summary([result])}"


def _scripted(path: Path) -> None:
    """Input i: ok, a clean error, a crash, a hang, a memory blow-up, a killed worker (i % 6)."""
    i = int(path.stem.split("-")[1]) % 6
    if i == 1:
        raise BadInput(f"{path}: no")
    if i == 2:
        raise KeyError("crash")
    if i == 3:
        time.sleep(60)
    if i == 4:
        bytearray(64 << 30)
    if i == 5:
        os.kill(os.getpid(), signal.SIGKILL)


def test_the_harness_tells_every_outcome_apart(tmp_path: Path) -> None:
    target = Target("scripted", lambda scratch: [b"seed"], _scripted, ".x")
    result = fuzz(target, 12, out_dir=tmp_path, jobs=2, timeout=1.0)
    assert dict(result.counts) == {"ok": 2, "clean": 2, "traceback": 2, "hang": 2, "memory": 4}
    causes = result.groups()
    assert any(c.startswith("KeyError at tests/fuzz/test_fuzz_short.py:") for c in causes), causes
    assert {"hang", "MemoryError", "memory (worker killed by SIGKILL)"} <= set(causes), causes
    assert len(list((tmp_path / "scripted").glob("*.x"))) == 8
