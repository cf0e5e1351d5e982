"""GPU memory per process from ``nvidia-smi`` (absent tool: None and a note, not a failure)."""

from __future__ import annotations

import shutil
import subprocess

QUERY = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]


def parse_compute_apps(text: str) -> dict[int, float]:
    """``pid, used_memory`` lines (MiB) summed per pid; lines that do not parse are skipped."""
    out: dict[int, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            continue
        try:
            pid, mib = int(parts[0]), float(parts[1])
        except ValueError:
            continue
        out[pid] = out.get(pid, 0.0) + mib
    return out


def gpu_mib_by_pid() -> tuple[dict[int, float] | None, str]:
    """(MiB per pid, note); None with the reason when nvidia-smi is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, "no nvidia-smi: GPU memory not measured"
    try:
        res = subprocess.run([exe, *QUERY], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi failed: {exc}"
    if res.returncode != 0:
        return None, f"nvidia-smi exited {res.returncode}: {res.stderr.strip()[:200]}"
    return parse_compute_apps(res.stdout), ""


def free_vram_mib() -> float | None:
    """Free memory summed over the GPUs nvidia-smi lists; None without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        res = subprocess.run(
            [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    vals = [float(v) for v in res.stdout.split() if v.replace(".", "", 1).isdigit()]
    return sum(vals) if res.returncode == 0 and vals else None
