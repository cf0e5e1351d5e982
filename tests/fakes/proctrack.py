"""Find processes by an environment tag, so a test checks only what *it* started.

Other llama-servers may run on the same machine; a test sets ``LANEBENCH_TEST_TAG`` to a fresh
value in lanebench's environment. The server inherits it, so ``tagged(tag)`` lists exactly the
processes that run descended from, wherever they were reparented.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

TAG_VAR = "LANEBENCH_TEST_TAG"


def new_tag() -> str:
    return uuid.uuid4().hex


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    state = _state(pid)
    return state is not None and state != "Z"


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def tagged(tag: str, name: str | None = None) -> list[int]:
    """Live pids whose environment holds ``LANEBENCH_TEST_TAG=tag`` (optionally named ``name``)."""
    needle = f"{TAG_VAR}={tag}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and alive(pid) and (name is None or comm(pid) == name):
            out.append(pid)
    return out


def children(pid: int, name: str | None = None) -> list[int]:
    """Live direct children of ``pid`` (optionally only those named ``name``)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and (name is None or comm(int(entry.name)) == name):
            out.append(int(entry.name))
    return out


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists (zombies of reaped children excluded)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_until(predicate, timeout_s: float = 20.0, step_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step_s)


def env_with_tag(tag: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, TAG_VAR: tag}
    env.update(extra)
    return env


def lanebench_argv(*args: str) -> list[str]:
    """Run the real CLI entry point with this interpreter (no shell, no PATH lookup)."""
    import sys

    return [sys.executable, "-m", "lanebench.cli.main", *args]


def real_server_argv(server_bin: Path, model: Path):
    """``argv_for_port`` for a small real llama-server: one slot, 512 context, one thread."""

    def argv(port: int) -> list[str]:
        head = [str(server_bin), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
        return [*head, "-c", "512", "-np", "1", "-t", "1"]

    return argv
