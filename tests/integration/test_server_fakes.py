"""ServerProcess's lifecycle on FAKE servers: the whole process group dies, and a server that exits
while loading fails fast with its log. The same on the real llama-server:
tests/e2e/test_server_lifecycle.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from tests.fakes.proctrack import alive, group_alive

from lanebench.errors import LaneFailed
from lanebench.server.process import ServerProcess

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def test_the_whole_group_dies_not_only_the_leader(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    fake = FAKES / "fake_llama_server_with_child.py"
    server = ServerProcess(
        lambda port: [sys.executable, str(fake), "--port", str(port), str(pid_file)],
        tmp_path / "fake.log",
        load_timeout_s=60,
    )
    with server:
        assert server.proc is not None
        pgid = server.proc.pid
        grandchild = int(pid_file.read_text())
        assert alive(grandchild) and os.getpgid(grandchild) == pgid
    assert not alive(grandchild)
    assert not group_alive(pgid)


@pytest.mark.timeout(120)
def test_a_server_that_exits_while_loading_fails_fast_with_its_log(tmp_path: Path) -> None:
    fake = FAKES / "fake_llama_server_exits_on_start.sh"
    server = ServerProcess(
        lambda port: [str(fake), "--port", str(port)],
        tmp_path / "fake.log",
        label="lane 'dies'",
        load_timeout_s=3600,  # failing fast must not mean waiting for this
    )
    with pytest.raises(LaneFailed) as info, server:
        pytest.fail("the fake exits at start")
    msg = str(info.value)
    assert msg.startswith("lane 'dies': llama-server exited with code 1 while loading: ")
    assert msg.endswith("fake llama-server: error: this fake always exits with code 1 while loading")
    assert "this fake always exits" in info.value.log_tail
    assert "fake llama-server: loading model" in info.value.log_tail
