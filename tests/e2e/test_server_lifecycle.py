"""ServerProcess lifecycle on the real llama-server: timed load, and no process outlives it.

Every server started here carries a fresh LANEBENCH_TEST_TAG in its environment, so the checks
see only this test's processes even when other llama-servers run on the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.proctrack import (
    TAG_VAR,
    alive,
    children,
    env_with_tag,
    group_alive,
    lanebench_argv,
    new_tag,
    real_server_argv,
    tagged,
    wait_until,
)

from lanebench.errors import LaneFailed
from lanebench.server.process import ServerProcess, health_status

pytestmark = pytest.mark.e2e


class Boom(Exception):
    pass


@pytest.mark.parametrize("how", ["normal", "exception", "keyboard_interrupt"])
def test_process_group_is_gone_after_the_with_block(
    how: str, server_bin: Path, gemma_270m: Path, tmp_path: Path
) -> None:
    tag = new_tag()
    server = ServerProcess(
        real_server_argv(server_bin, gemma_270m),
        tmp_path / "server.log",
        env={TAG_VAR: tag},
        load_timeout_s=180,
    )
    pgid = port = 0
    raised: BaseException | None = None
    try:
        with server:
            assert server.proc is not None
            pgid, port = server.proc.pid, server.port
            assert os.getpgid(pgid) == pgid != os.getpgrp()  # its own process group
            assert server.load_s is not None and server.load_s > 0
            assert health_status(port) == 200
            assert tagged(tag, "llama-server") == [pgid]
            if how == "exception":
                raise Boom("inside the with-block")
            if how == "keyboard_interrupt":
                raise KeyboardInterrupt
    except (Boom, KeyboardInterrupt) as exc:
        raised = exc
    expected = {"normal": type(None), "exception": Boom, "keyboard_interrupt": KeyboardInterrupt}[how]
    assert type(raised) is expected  # the with-block does not swallow what happened inside it
    assert pgid
    assert not group_alive(pgid)
    assert tagged(tag) == []
    assert health_status(port, timeout_s=1.0) is None
    assert server.proc is None and not server.alive()
    assert "--port" in server.log_path.read_text(errors="replace")  # the log starts with the argv
    server.stop()  # stopping twice is harmless


def test_load_timeout_names_itself_and_stops_the_server(
    server_bin: Path, gemma_270m: Path, tmp_path: Path
) -> None:
    tag = new_tag()
    server = ServerProcess(
        real_server_argv(server_bin, gemma_270m),
        tmp_path / "server.log",
        env={TAG_VAR: tag},
        load_timeout_s=0.01,
    )
    with pytest.raises(LaneFailed) as info, server:
        pytest.fail("a 10 ms load timeout cannot be met")
    msg = str(info.value)
    assert "load timeout" in msg and "--load-timeout" in msg
    assert "\n" not in msg
    assert isinstance(info.value.log_tail, str)
    assert wait_until(lambda: tagged(tag) == [], timeout_s=15)
    assert server.proc is None


# lanebench itself killed or stopped mid-run


def _one_lane_file(tmp_path: Path, server_bin: Path, model: Path) -> Path:
    lanes = tmp_path / "lanes.toml"
    lanes.write_text(
        f'[[lane]]\nname = "plain"\nmodel = "{model}"\nserver_bin = "{server_bin}"\nthreads = 1\n',
        encoding="utf-8",
    )
    return lanes


def _start_run(tmp_path: Path, lanes: Path, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        lanebench_argv(
            "run",
            str(lanes),
            "--n-in",
            "64",
            "--n-out",
            "8",
            "--reps",
            "1",
            "--aggregate",
            "0",
            "--no-db",
            "--out-dir",
            str(tmp_path / "logs"),
        ),
        cwd=tmp_path,
        env=env_with_tag(tag),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _server_of(proc: subprocess.Popen[str]) -> int:
    found: list[int] = []

    def spawned() -> bool:
        found[:] = children(proc.pid, "llama-server")
        return bool(found) or proc.poll() is not None

    assert wait_until(spawned, timeout_s=90), "lanebench never started llama-server"
    assert found, f"lanebench exited first: {proc.communicate()}"
    return found[0]


def test_lanebench_killed_with_sigkill_leaves_no_server(
    server_bin: Path, gemma_270m: Path, tmp_path: Path
) -> None:
    tag = new_tag()
    proc = _start_run(tmp_path, _one_lane_file(tmp_path, server_bin, gemma_270m), tag)
    try:
        server_pid = _server_of(proc)
        proc.kill()  # SIGKILL: no handler, no atexit; only PR_SET_PDEATHSIG can stop the child
        proc.wait(timeout=30)
        assert wait_until(lambda: not alive(server_pid), timeout_s=15)
        assert tagged(tag, "llama-server") == []
    finally:
        proc.kill()
        proc.communicate()
        for pid in tagged(tag):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def sigterm_run(
    tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path
) -> Iterator[tuple[int, str, bool]]:
    tmp_path = tmp_path_factory.mktemp("sigterm")
    tag = new_tag()
    proc = _start_run(tmp_path, _one_lane_file(tmp_path, server_bin, gemma_270m), tag)
    try:
        server_pid = _server_of(proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        gone = wait_until(lambda: not alive(server_pid), timeout_s=15) and tagged(tag, "llama-server") == []
        yield proc.returncode, err, gone
    finally:
        proc.kill()
        for pid in tagged(tag):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_the_server_and_exits_130(sigterm_run: tuple[int, str, bool]) -> None:
    code, err, gone = sigterm_run
    assert code == 130
    assert gone
    assert "Traceback" not in err


def test_sigterm_says_it_was_interrupted(sigterm_run: tuple[int, str, bool]) -> None:
    _, err, _ = sigterm_run
    assert "interrupted" in err
