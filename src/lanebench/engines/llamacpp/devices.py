"""The devices a llama.cpp build can offload to, from its own ``--list-devices``.

b11434 prints ``Available devices:`` then ``  NAME: DESCRIPTION (TOTAL MiB, FREE MiB free)`` per
non-CPU device, or ``  (none)`` (``common/arg.cpp``, ``common_print_available_devices``). The CPU
is never listed and ``--device`` refuses it. RPC devices appear only with ``--rpc``, named
``RPC0``, ``RPC1``... in the order of the endpoints.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from lanebench.errors import BadInput
from lanebench.records.placement import Device

_LINE = re.compile(r"^\s+(\S+): (.*?) \((\d+) MiB, (\d+) MiB free\)\s*$")


def parse_devices(text: str) -> list[Device] | None:
    """The devices of ``--list-devices`` output; None when the text has no device list."""
    if "Available devices:" not in text:
        return None
    after = text.split("Available devices:", 1)[1]
    out = []
    for line in after.splitlines():
        if m := _LINE.match(line):
            out.append(Device(m[1], m[2], int(m[3]), int(m[4])))
    return out


@lru_cache(maxsize=16)
def list_devices(server_bin: Path, env: tuple[tuple[str, str], ...] = ()) -> tuple[Device, ...] | None:
    """This build's devices here (None when it has no ``--list-devices`` or it failed); ``env``:
    variables set for the run (a lane's ``CUDA_VISIBLE_DEVICES`` shows it fewer devices)."""
    try:
        proc = subprocess.run(
            [str(server_bin), "--list-devices"],
            capture_output=True, text=True, timeout=60, errors="replace", check=False,
            env={**os.environ, **dict(env)} if env else None,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = parse_devices(proc.stdout + proc.stderr)
    return tuple(found) if found is not None else None


def check_device_names(
    label: str, field: str, names: list[str], devices: tuple[Device, ...], rpc_endpoints: int
) -> None:
    """Refuse names this build does not list; ``RPC<n>`` names pass when the lane has RPC
    endpoints (their devices are known only once the servers answer)."""
    if names == ["none"]:
        return
    known = [d.name for d in devices]
    for name in names:
        if name == "none":
            raise BadInput(f"{label}: field {field!r}: 'none' cannot be combined with device names")
        if rpc_endpoints and re.fullmatch(r"RPC\d+", name):
            continue
        if name not in known:
            listed = ", ".join(known) if known else "no devices (a CPU-only build)"
            rpc = "; RPC devices are RPC0, RPC1... in endpoint order" if rpc_endpoints else ""
            raise BadInput(
                f"{label}: field {field!r}: {name!r} is not a device of this build here "
                f"(--list-devices lists {listed}{rpc})"
            )
