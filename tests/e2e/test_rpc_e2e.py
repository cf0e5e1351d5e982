"""End to end: lanes over llama.cpp's RPC backend, with real ``ggml-rpc-server`` processes (CPU
backend) that lanebench starts on 127.0.0.1, the real llama-server and the real 270M.

A lane with two local RPC servers is measured and its layers land on both (the server log's
RPC buffers); killing one RPC server mid-run fails only that lane, naming the endpoint; no process
outlives the run (checked by PID); an ``rpc`` endpoint where nothing listens, a build without
``--rpc`` and a device the build does not have are refused before anything starts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from tests.cli_helpers import FAKES, TINY, lanes_file, one_error_line, run_cli

from lanebench.engines.llamacpp.rpc import find_rpc_server

pytestmark = pytest.mark.e2e
FAKE_RPC_BUILD = FAKES / "fake_llama_server_rpc.sh"


@pytest.fixture(scope="module")
def rpc_server_bin(server_bin: Path) -> Path:
    from tests.conftest import need

    found = find_rpc_server(server_bin)
    if found is None:
        need(f"no ggml-rpc-server beside {server_bin}; run scripts/setup.sh (every build has it)")
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids_of(binary: Path, port: int) -> list[int]:
    """Live processes running ``binary`` with ``-p port`` (an RPC server's own command line)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and argv[:1] == [str(binary).encode()] and str(port).encode() in argv:
            out.append(int(entry.name))
    return out


def test_two_local_rpc_servers_carry_the_lane_and_leave_nothing_behind(
    tmp_path: Path, gemma_270m: Path, rpc_server_bin: Path
) -> None:
    ports = [_free_port(), _free_port()]
    lanes = lanes_file(
        tmp_path,
        '[[lane]]\nname = "two rpc"\ngpu_layers = 99\n'
        f"rpc_local = [{{ threads = 1, port = {ports[0]} }}, {{ threads = 1, port = {ports[1]} }}]\n",
    )
    out = tmp_path / "run.json"
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not left, f"processes outlived the run: {left}"
    assert not [p for port in ports for p in _pids_of(rpc_server_bin, port)]
    (lane,) = json.loads(out.read_text())["lanes"]
    assert lane["status"] == "ok"
    argv = lane["argv"]
    assert argv[argv.index("--rpc") + 1] == f"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    probes = lane["placement"]["rpc"]
    assert [p["endpoint"] for p in probes] == [f"127.0.0.1:{p}" for p in ports]
    for p in probes:
        assert p["local"] and p["protocol"].startswith("7.")
        assert len(p["devices"]) == 1 and p["devices"][0]["total_mib"] > 0  # the RPC server's CPU
        assert len(p["rtt_ms"]) == 5 and p["rtt_ms_median"] > 0
    log = Path(lane["log_path"]).read_text(errors="replace")
    for port in ports:  # the model's layers on both RPC servers, in the server's own words
        assert re.search(rf"RPC\d+\[127\.0\.0\.1:{port}\] model buffer size\s*=\s*[\d.]+ MiB", log)
    for i in range(2):  # each RPC server's log is kept beside the lane's
        rpc_log = Path(lane["log_path"]).with_name(Path(lane["log_path"]).stem + f"-rpc{i}.log")
        assert "Accepted client connection" in rpc_log.read_text()
    assert "Placement" in proc.stdout


def test_an_rpc_server_killed_mid_run_fails_only_its_lane(
    tmp_path: Path, gemma_270m: Path, rpc_server_bin: Path
) -> None:
    port = _free_port()
    lanes = lanes_file(
        tmp_path,
        '[[lane]]\nname = "rpc killed"\ngpu_layers = 99\n'
        f"rpc_local = [{{ threads = 1 }}, {{ threads = 1, port = {port} }}]\n\n"
        '[[lane]]\nname = "plain"\n',
    )
    killed: list[int] = []

    def kill_when_the_job_runs() -> None:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            logs = list((tmp_path / "logs").glob("*rpc_killed.log"))
            if logs and logs[0].read_text(errors="replace").count("selected slot") >= 2:  # warm-up done
                for pid in _pids_of(rpc_server_bin, port):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_the_job_runs, daemon=True)
    killer.start()
    out = tmp_path / "run.json"
    proc, left = run_cli(
        tmp_path, "run", str(lanes), "--n-in", "64", "--n-out", "200", "--reps", "2", "--aggregate", "0",
        "--json", str(out),
    )  # fmt: skip
    killer.join(5)
    assert killed, "the job ended before the RPC server could be killed"
    assert proc.returncode == 4, proc.stderr[-3000:]  # a lane failed; the run finished
    assert "Traceback" not in proc.stderr
    assert not left, f"processes outlived the run: {left}"
    lanes_out = {lane["name"]: lane for lane in json.loads(out.read_text())["lanes"]}
    failed = lanes_out["rpc killed"]
    assert failed["status"] == "failed"
    assert f"RPC server 127.0.0.1:{port} (rpc_local[1]) was killed by SIGKILL mid-run" in failed["error"]
    assert "Accepted client connection" in failed["log_tail"]  # the RPC server's own log tail
    assert lanes_out["plain"]["status"] == "ok"
    assert lanes_out["plain"]["summary"]["decode_tps"]["median"] > 0


def test_an_rpc_endpoint_with_nothing_listening_is_refused_before_start(
    tmp_path: Path, server_bin: Path, gemma_270m: Path, rpc_server_bin: Path
) -> None:
    port = _free_port()
    lanes = lanes_file(tmp_path, f'[[lane]]\nname = "remote"\nrpc = ["127.0.0.1:{port}"]\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert line == (
        f"lane 'remote': field 'rpc': RPC server 127.0.0.1:{port}: connection refused (nothing listens there)"
    )
    assert not left
    logs = tmp_path / "logs"
    assert not logs.exists() or not list(logs.glob("*.log"))  # nothing was started


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("absent", "lane 'r': field 'rpc_local': this llama-server build has no --rpc"),
        ("unsupported", "lane 'r': field 'rpc_local': this llama-server was built without llama.cpp's RPC"),
    ],
)
def test_a_build_without_rpc_refuses_before_anything_starts(
    tmp_path: Path, gemma_270m: Path, mode: str, expected: str
) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "r"\nrpc_local = [{}]\n')
    proc, left = run_cli(
        tmp_path, "run", str(lanes), *TINY, "--server-bin", str(FAKE_RPC_BUILD), env={"FAKE_RPC": mode}
    )
    line = one_error_line(proc)
    assert line.startswith(expected), line
    assert proc.returncode == 2
    assert not left


def test_a_device_the_build_does_not_have_is_refused(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "gpu"\ndevices = ["CUDA7"]\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY)
    line = one_error_line(proc)
    assert line.startswith("lane 'gpu': field 'devices': 'CUDA7' is not a device of this build here"), line
    assert not left
