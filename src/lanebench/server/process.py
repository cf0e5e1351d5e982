"""A launched llama-server: own process group, load-to-listening, log capture, crash detection.

``ServerProcess`` is a context manager. It binds to 127.0.0.1 on a free port, times spawn → first
200 from ``/health``, fails fast with the log tail if the process dies while loading, and stops
the whole process group (SIGTERM, then SIGKILL) on exit, error or Ctrl-C. On Linux the child
also gets SIGKILL if lanebench itself dies (PR_SET_PDEATHSIG), so no server outlives it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from lanebench.analysis.serverlog import RUN_MARK
from lanebench.errors import LaneFailed
from lanebench.memory.proc import live_group_pids
from lanebench.server.exitcause import describe_exit, mem_available_bytes

_LIVE: set[ServerProcess] = set()
_BIND_ERRORS = ("couldn't bind", "address already in use", "failed to bind", "failed to create server socket")
_MODEL_FLAGS = ("-m", "--model", "-md", "--model-draft", "--mtp-head")


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing listens there, else a free port the OS picks (127.0.0.1)."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def health_status(port: int, timeout_s: float = 2.0, path: str = "/health") -> int | None:
    """HTTP status of GET ``path`` (an engine's readiness probe), or None when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def model_bytes(argv: list[str]) -> int | None:
    """Total size of the model files an engine command line names (``-m``, ``-md``, heads)."""
    total, seen = 0, False
    for flag, value in itertools.pairwise(argv):
        if flag in _MODEL_FLAGS:
            with contextlib.suppress(OSError):
                total += Path(value).stat().st_size
                seen = True
    return total if seen else None


class ServerProcess:
    """One llama-server for one lane; ``argv_for_port(port)`` builds its command line."""

    def __init__(
        self,
        argv_for_port: Callable[[int], list[str]],
        log_path: Path,
        *,
        label: str = "llama-server",
        env: Mapping[str, str] | None = None,
        load_timeout_s: float = 300.0,
        port: int | None = None,
        bind_retries: int = 3,
        ready_path: str = "/health",
        ready: Callable[[int], bool] | None = None,
        program: str = "llama-server",
    ) -> None:
        self.ready_path = ready_path
        self.ready = ready  # readiness other than HTTP 200 at ready_path (an RPC server's hello)
        self.program = program
        self.argv_for_port = argv_for_port
        self.log_path = log_path
        self.label = label
        self.env = dict(env or {})
        self.load_timeout_s = load_timeout_s
        self.preferred_port = port
        self.bind_retries = bind_retries
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int = 0
        self.argv: list[str] = []
        self.load_s: float | None = None
        self.died_with: int | None = None  # exit status when it ended on its own (not stopped by us)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def headers(self) -> dict[str, str]:
        return {}

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def start(self) -> None:
        """Spawn and wait for the first 200 from /health; retries on a port taken meanwhile."""
        port = free_port(self.preferred_port)
        for attempt in range(self.bind_retries):
            self._spawn(port)
            if self._wait_ready():
                return
            log = self.log_tail(40).lower()
            if attempt + 1 < self.bind_retries and any(m in log for m in _BIND_ERRORS):
                port = free_port()
                continue
            self._fail_exited()

    def _spawn(self, port: int) -> None:
        self.stop()
        self.port = port
        self.argv = self.argv_for_port(port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"{RUN_MARK}{' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise LaneFailed(
                    f"{self.label}: cannot start {self.argv[0]}: {exc.strerror or exc}"
                ) from None
        _LIVE.add(self)
        self._t0 = time.monotonic()

    def _answers(self) -> bool:
        if self.ready is not None:
            return self.ready(self.port)
        return health_status(self.port, timeout_s=1.0, path=self.ready_path) == 200

    def _wait_ready(self) -> bool:
        """True once /health says 200; False if the process exited first."""
        deadline = self._t0 + self.load_timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if self._answers():
                self.load_s = time.monotonic() - self._t0
                return True
            time.sleep(0.05)
        log_tail = self.log_tail()
        self.stop()
        what = "no answer" if self.ready is not None else f"no 200 from {self.ready_path}"
        raise LaneFailed(
            f"{self.label}: load timeout: {what} within {self.load_timeout_s:g} s (--load-timeout)",
            log_tail,
        )

    def exit_cause(self, log_tail: str, phase: str) -> str:
        """How the process ended, with the signal's likely cause (see engines.exitcause)."""
        self.died_with = self.proc.returncode if self.proc else None
        try:
            meminfo = Path("/proc/meminfo").read_text()
        except OSError:
            meminfo = ""
        return describe_exit(
            self.died_with,
            self.log_tail(200) or log_tail,  # an assert sits above the backtrace's frames
            phase=phase,
            program=self.program,
            model_bytes=model_bytes(self.argv),
            mem_available_bytes=mem_available_bytes(meminfo),
        )

    def _fail_exited(self) -> None:
        log_tail = self.log_tail()
        cause = self.exit_cause(log_tail, "while loading")
        self.stop()
        raise LaneFailed(f"{self.label}: {cause}", log_tail)

    def check_alive(self, grace_s: float = 0.0) -> None:
        """Raise LaneFailed with the log tail and the cause if the server has died.

        ``grace_s``: after a failed request, how long to wait for a dying process to be reaped
        (a connection can break a moment before its exit status exists)."""
        if self.proc is not None and grace_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        if self.proc is not None and self.proc.poll() is not None:
            log_tail = self.log_tail()
            raise LaneFailed(f"{self.label}: {self.exit_cause(log_tail, 'mid-run')}", log_tail)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; safe to call twice."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the server left in its group
        _wait_group_gone(proc.pid)
        _LIVE.discard(self)
        self.proc = None


def _wait_group_gone(pgid: int, timeout_s: float = 5.0) -> None:
    """Until no process of group ``pgid`` runs any more (SIGKILL is delivered asynchronously: a
    loaded machine can still schedule the group's other processes after ``killpg`` returns, and
    the next lane must not be measured beside them); at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while live_group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def stop_all() -> None:
    """Stop every server this process started (atexit and signal handlers call it)."""
    for server in list(_LIVE):
        server.stop(grace_s=3.0)


atexit.register(stop_all)
