"""Faults, end to end: a server that dies while loading or mid-job, a port already taken.

A fault fails only its own lane, with the server's log tail, and the run goes on (exit code 4).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.cli_helpers import (
    DIES_BY_SIGNAL,
    EXITS_ON_START,
    TINY,
    lanes_file,
    run_cli,
)
from tests.fakes.proctrack import (
    TAG_VAR,
    alive,
    children,
    env_with_tag,
    lanebench_argv,
    new_tag,
    real_server_argv,
    tagged,
    wait_until,
)

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.orchestration.measure_lane import LaneMeasurer
from lanebench.orchestration.plan import new_run, plan_lanes
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord
from lanebench.server import process as server_mod
from lanebench.server.process import ServerProcess, health_status

# Faults: only the failing lane fails; its log tail is kept; the others still run (exit code 4)


@pytest.mark.e2e
def test_lanes_that_die_while_loading_fail_alone(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    with gemma_270m.open("rb") as f:
        truncated.write_bytes(f.read(1 << 20))  # real GGUF magic and header, then nothing
    lanes = lanes_file(
        tmp_path,
        f"""
[defaults]
model = "{gemma_270m}"
server_bin = "{server_bin}"
threads = 1
slots = 1

[[lane]]
name = "fake dies"
server_bin = "{EXITS_ON_START}"

[[lane]]
name = "truncated model"
model = "{truncated}"

[[lane]]
name = "plain"
""",
    )
    out = tmp_path / "run.json"
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, "--json", str(out))
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert left == []
    lanes_by_name = {lane["name"]: lane for lane in json.loads(out.read_text())["lanes"]}
    fake, trunc, plain = (lanes_by_name[n] for n in ("fake dies", "truncated model", "plain"))

    assert fake["status"] == "failed"
    assert "exited with code 1 while loading" in fake["error"]
    assert "this fake always exits with code 1" in fake["log_tail"]

    assert trunc["status"] == "failed"
    assert "exited with code" in trunc["error"] and "while loading" in trunc["error"]
    assert "failed to load model" in trunc["log_tail"]

    assert plain["status"] in {"ok", "flagged"}
    assert plain["error"] is None
    assert plain["summary"]["decode_tps"]["median"] > 0
    assert [s["ok"] for s in plain["samples"]] == [True, True]  # warm-up and one rep

    assert "lane 'fake dies': failed" in proc.stderr
    assert "lane 'truncated model': failed" in proc.stderr
    assert "FAILED" in proc.stdout


@pytest.mark.e2e
def test_load_timeout_via_cli_names_the_flag(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    lanes = lanes_file(
        tmp_path, f'[[lane]]\nname = "slow"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n'
    )
    out = tmp_path / "run.json"
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, "--load-timeout", "0.01", "--json", str(out))
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr
    assert left == []
    (lane,) = json.loads(out.read_text())["lanes"]
    assert lane["status"] == "failed" and "--load-timeout" in lane["error"]
    assert "--load-timeout" in proc.stderr


# A port already taken


def _held_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


@pytest.mark.e2e
def test_preferred_port_taken_picks_another(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    tag = new_tag()
    with _held_port() as held:
        taken = held.getsockname()[1]
        server = ServerProcess(
            real_server_argv(server_bin, gemma_270m),
            tmp_path / "s.log",
            env={TAG_VAR: tag},
            port=taken,
            load_timeout_s=180,
        )
        with server:
            assert server.port != taken
            assert health_status(server.port) == 200
    assert tagged(tag) == []


@pytest.mark.e2e
def test_port_taken_between_pick_and_bind_is_retried(
    tmp_path: Path, server_bin: Path, gemma_270m: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = new_tag()
    real_free_port = server_mod.free_port
    with _held_port() as held:
        taken = held.getsockname()[1]
        handed: list[int] = []

        def racy_free_port(preferred: int | None = None) -> int:
            port = taken if not handed else real_free_port(preferred)
            handed.append(port)
            return port

        monkeypatch.setattr(server_mod, "free_port", racy_free_port)
        server = ServerProcess(
            real_server_argv(server_bin, gemma_270m),
            tmp_path / "s.log",
            env={TAG_VAR: tag},
            load_timeout_s=180,
        )
        with server:
            assert handed[0] == taken and server.port == handed[-1] != taken
            assert health_status(server.port) == 200
            assert "couldn't bind" in server.log_path.read_text(errors="replace")
    assert tagged(tag) == []


# The server dying mid-job


class KillAfterFirstRecord:
    """A sink that SIGKILLs this process's llama-server child once the first record arrives."""

    def __init__(self) -> None:
        self.killed: list[int] = []

    def run_started(self, run: RunInfo) -> None: ...
    def lane_started(self, run: RunInfo, lane: LaneResult) -> None: ...
    def lane_finished(self, run: RunInfo, lane: LaneResult) -> None: ...
    def run_finished(self, run: RunInfo) -> None: ...

    def sample(self, run: RunInfo, lane: str, record: RequestRecord | AggregateRecord) -> None:
        if self.killed:
            return
        (pid,) = children(os.getpid(), "llama-server")
        os.killpg(pid, signal.SIGKILL)
        assert wait_until(lambda: not alive(pid), timeout_s=10)
        self.killed.append(pid)


@pytest.fixture(scope="module")
def killed_then_next(
    tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path
) -> tuple[LaneResult, LaneResult, list[int]]:
    """Two lanes planned together; the first one's server is SIGKILLed after its first record."""
    job = JobSpec(n_in=64, n_out=8, reps=2, warmup=1, aggregate=0)
    logs = tmp_path_factory.mktemp("midjob")
    opts = RunConfig(out_dir=logs, server_bin=server_bin, load_timeout_s=180).with_job(job)
    first, second = plan_lanes(
        [
            LaneSpec(name="killed", model=gemma_270m, slots=1, threads=1),
            LaneSpec(name="after", model=gemma_270m, slots=1, threads=1),
        ],
        opts,
    )
    run = new_run(opts)
    killer = KillAfterFirstRecord()
    killed = LaneMeasurer(run, opts, [killer]).measure(first)
    left = children(os.getpid(), "llama-server")
    after = LaneMeasurer(run, opts, []).measure(second)
    left += children(os.getpid(), "llama-server")
    assert len(killer.killed) == 1
    return killed, after, left


@pytest.mark.e2e
def test_server_killed_mid_job_fails_that_lane(
    killed_then_next: tuple[LaneResult, LaneResult, list[int]],
) -> None:
    killed, _, left = killed_then_next
    assert left == []  # no server is left after either lane
    assert killed.status == "failed"
    assert killed.error is not None and "killed by SIGKILL mid-run" in killed.error
    assert killed.log_tail.strip()  # the server's own log, for the user to read
    assert killed.samples and killed.samples[0].ok  # what was measured before is kept
    assert killed.samples[0].kind == "warmup"


@pytest.mark.e2e
def test_the_lane_after_a_killed_one_still_measures(
    killed_then_next: tuple[LaneResult, LaneResult, list[int]],
) -> None:
    _, after, _ = killed_then_next
    assert after.status in {"ok", "flagged"}, after.error
    assert after.error is None
    assert [s.ok for s in after.samples] == [True] * 3
    assert after.summary["decode_tps"].median > 0


@pytest.mark.e2e
def test_the_request_that_met_the_dead_server_is_kept_as_data(
    killed_then_next: tuple[LaneResult, LaneResult, list[int]],
) -> None:
    killed, _, _ = killed_then_next
    failed = [s for s in killed.samples if not s.ok]
    assert failed and failed[0].error


@pytest.mark.e2e
def test_server_killed_mid_job_via_cli_exits_4(tmp_path: Path, server_bin: Path, gemma_270m: Path) -> None:
    lanes = lanes_file(
        tmp_path,
        f'[[lane]]\nname = "killed"\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\n'
        "threads = 1\nslots = 1\n",
    )
    out = tmp_path / "run.json"
    tag = new_tag()
    env = env_with_tag(tag)
    env.pop("LANEBENCH_SERVER_BIN", None)
    args = ("--n-in", "64", "--n-out", "32", "--reps", "3", "--aggregate", "0", "--json", str(out))
    proc = subprocess.Popen(
        lanebench_argv("run", str(lanes), *args, "--no-db", "--out-dir", str(tmp_path / "logs")),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def first_sample_written() -> bool:
        try:
            doc: dict[str, Any] = json.loads(out.read_text())
        except (OSError, ValueError):
            return proc.poll() is not None
        return any(lane["samples"] for lane in doc["lanes"]) or proc.poll() is not None

    try:
        assert wait_until(first_sample_written, timeout_s=120)
        (server_pid,) = children(proc.pid, "llama-server")  # still mid-job: 3 reps remain
        os.killpg(server_pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        for pid in tagged(tag):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 4, err
    assert "Traceback" not in err
    assert "lane 'killed': failed" in err and "killed by SIGKILL mid-run" in err
    (lane,) = json.loads(out.read_text())["lanes"]
    assert lane["status"] == "failed"
    assert lane["samples"][0]["ok"] is True
    assert lane["log_tail"].strip()
    assert tagged(tag) == []


@pytest.mark.e2e
def test_an_engine_killed_by_a_signal_names_the_signal_and_what_to_do(
    tmp_path: Path, gemma_270m: Path
) -> None:
    lanes = lanes_file(
        tmp_path,
        f"""
[defaults]
model = "{gemma_270m}"
server_bin = "{DIES_BY_SIGNAL}"
threads = 1
slots = 1

[[lane]]
name = "sigill"
env = {{ FAKE_SIGNAL = "SIGILL" }}

[[lane]]
name = "sigkill"
env = {{ FAKE_SIGNAL = "SIGKILL" }}

[[lane]]
name = "sigsegv"
env = {{ FAKE_SIGNAL = "SIGSEGV" }}
""",
    )
    out = tmp_path / "run.json"
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, "--json", str(out))
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert left == []
    errors = {lane["name"]: lane["error"] for lane in json.loads(out.read_text())["lanes"]}
    assert "killed by SIGILL (illegal instruction) while loading" in errors["sigill"]
    assert "CPU instructions this machine will not run" in errors["sigill"]
    assert "lanebench install-server --rebuild" in errors["sigill"]
    assert "killed by SIGKILL while loading, most likely by the kernel's OOM killer" in errors["sigkill"]
    size_gb = f"{gemma_270m.stat().st_size / 1e9:.1f} GB"
    assert f"model file(s) {size_gb}" in errors["sigkill"] and "of memory available now" in errors["sigkill"]
    assert "crashed with SIGSEGV while loading: " in errors["sigsegv"]
    assert errors["sigsegv"].endswith("GGML_ASSERT(ctx->mem_buffer != NULL) failed")
    for error in errors.values():
        assert "exited with code -" not in error
