"""What machine measured a run: CPU, cores, RAM, OS, kernel, GPUs and their drivers.

``host_basics`` is cheap and goes into every run; ``host_details`` also asks the GPU tools
that exist here (``nvidia-smi``, ``rocminfo``, ``rocm-smi``, ``vulkaninfo``). A missing tool is
simply absent from the answer, never an error. Parsers are pure functions over tool output.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

TOOL_TIMEOUT_S = 20.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def host_basics() -> dict[str, Any]:
    """Hostname, OS, kernel, CPU model, logical cores and RAM of this machine."""
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "ram_bytes": ram_bytes(),
        "python": platform.python_version(),
    }


def physical_cores(cpuinfo: str) -> int | None:
    """Distinct (physical id, core id) pairs in ``/proc/cpuinfo`` text; None if not listed."""
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    for line in [*cpuinfo.splitlines(), ""]:
        key, _, value = (p.strip() for p in line.partition(":"))
        if key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        elif not line.strip() and core:
            cores.add((phys, core))
            phys = core = ""
    return len(cores) or None


def os_pretty_name(os_release: str) -> str | None:
    """``PRETTY_NAME`` from ``/etc/os-release`` text."""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', os_release, re.M)
    return m[1] if m else None


def parse_nvidia_smi(text: str) -> list[dict[str, str]]:
    """``nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            gpus.append({"vendor": "nvidia", "name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def parse_rocminfo(text: str) -> list[dict[str, str]]:
    """GPU agents of ``rocminfo``: marketing name and gfx target."""
    gpus = []
    for block in re.split(r"\*{5,}\s*\n\s*Agent \d+\s*\n\s*\*{5,}", text)[1:]:
        fields = dict(re.findall(r"^\s{2}([A-Za-z][\w ]*?):\s+(.+?)\s*$", block, re.M))
        if fields.get("Device Type") == "GPU":
            gpus.append(
                {"vendor": "amd", "name": fields.get("Marketing Name", ""), "gfx": fields.get("Name", "")}
            )
    return gpus


def parse_rocm_smi_json(text: str) -> list[dict[str, str]]:
    """``rocm-smi --showproductname --json``: card series/model and gfx version per card."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    cards = []
    for card, info in sorted(data.items()) if isinstance(data, dict) else []:
        if isinstance(info, dict) and card.startswith("card"):
            name = info.get("Card Series") or info.get("Card series") or info.get("Card model") or ""
            cards.append(
                {"vendor": "amd", "card": card, "name": str(name), "gfx": str(info.get("GFX Version", ""))}
            )
    return cards


def parse_vulkaninfo_summary(text: str) -> list[dict[str, str]]:
    """Devices of ``vulkaninfo --summary``: name, type, driver name and info (Mesa version)."""
    devices = []
    for block in re.split(r"^GPU\d+:\s*$", text, flags=re.M)[1:]:
        fields = dict(re.findall(r"^\s+(\w+)\s*=\s*(.+?)\s*$", block, re.M))
        if "deviceName" in fields:
            devices.append(
                {
                    "name": fields["deviceName"],
                    "type": fields.get("deviceType", "").replace("PHYSICAL_DEVICE_TYPE_", "").lower(),
                    "driver": fields.get("driverName", ""),
                    "driver_info": fields.get("driverInfo", ""),
                    "api": fields.get("apiVersion", ""),
                }
            )
    return devices


def mesa_version(vulkan: list[dict[str, str]]) -> str | None:
    """``Mesa 25.2.8 / RADV`` from the first Mesa driver vulkaninfo reports."""
    for d in vulkan:
        m = re.search(r"Mesa\s+(\S+)", d.get("driver_info", ""))
        if m:
            return f"Mesa {m[1]} / {d.get('driver', '').upper() or '?'}"
    return None


def run_tool(argv: list[str], timeout_s: float = TOOL_TIMEOUT_S) -> str | None:
    """A tool's stdout, or None when it is absent, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, errors="replace")
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def gpu_details() -> dict[str, Any]:
    """GPUs as each present tool describes them; absent tools leave no key."""
    out: dict[str, Any] = {}
    probes = {
        "nvidia": (
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            parse_nvidia_smi,
        ),
        "rocminfo": (["rocminfo"], parse_rocminfo),
        "rocm_smi": (["rocm-smi", "--showproductname", "--json"], parse_rocm_smi_json),
        "vulkan": (["vulkaninfo", "--summary"], parse_vulkaninfo_summary),
    }
    for key, (argv, parse) in probes.items():
        text = run_tool(argv)
        if text is not None:
            out[key] = parse(text)
    if mesa := mesa_version(out.get("vulkan", [])):
        out["mesa"] = mesa
    if rocm := _read("/opt/rocm/.info/version").strip():
        out["rocm_version"] = rocm
    return out


def host_details() -> dict[str, Any]:
    """``host_basics`` plus physical cores, OS name and GPU details (for fingerprints)."""
    info = host_basics()
    info["physical_cores"] = physical_cores(_read("/proc/cpuinfo"))
    info["os_name"] = os_pretty_name(_read("/etc/os-release")) or platform.system()
    info["gpus"] = gpu_details()
    return info
