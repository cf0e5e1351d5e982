"""ServerProcess with a binary that cannot be started: one clean LaneFailed, no process."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.errors import LaneFailed
from lanebench.server.process import ServerProcess


def test_a_binary_that_cannot_start(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-llama-server"
    server = ServerProcess(lambda port: [str(missing), "--port", str(port)], tmp_path / "x.log")
    with pytest.raises(LaneFailed, match=r"^llama-server: cannot start .*no-such-llama-server"), server:
        pass
