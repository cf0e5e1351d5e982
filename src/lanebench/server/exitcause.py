"""Why an engine process ended: a signal named with its likely cause and what to do.

Pure: the caller passes the exit status, the log tail and, for SIGKILL, the machine's available
memory and the model's size. ``describe_exit`` never returns a bare "exited with code -4".
"""

from __future__ import annotations

import re
import signal

REBUILD_ADVICE = (
    "rebuild it for this machine with 'lanebench install-server --rebuild' (it smoke-tests each "
    "build configuration and keeps one that runs here), or pass --server-bin another build"
)

# Lines a crashing llama.cpp leaves behind, most specific first.
_CAUSE_PATTERNS = (
    re.compile(r"GGML_ASSERT.*|GGML_ABORT.*"),
    re.compile(r"terminate called.*|what\(\):.*"),
    re.compile(r"\b(error|failed|fatal|exception|out of memory|cannot|unable)\b.*", re.IGNORECASE),
)


def signal_name(returncode: int) -> str | None:
    """``SIGILL`` for -4 (Popen) or 132 (a shell's 128 + N); None for an ordinary exit."""
    num = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 160 else 0
    if num <= 0:
        return None
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


_FRAME = re.compile(r"\[0x[0-9a-f]+\]$")  # a backtrace frame: binary(+0x7b3c5)[0x5584db25b3c5]


def last_cause_line(log_tail: str) -> str:
    """The most telling line of a crash log: an assert, a C++ exception, then any error line;
    else the last line that is not a backtrace frame."""
    lines = [ln.strip() for ln in log_tail.splitlines() if ln.strip() and not _FRAME.search(ln.strip())]
    for pattern in _CAUSE_PATTERNS:
        for line in reversed(lines):
            m = pattern.search(line)
            if m:
                return line
    return lines[-1] if lines else "no output"


def _gb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e9:.1f} GB"


def describe_exit(
    returncode: int | None,
    log_tail: str,
    *,
    phase: str = "",
    program: str = "llama-server",
    model_bytes: int | None = None,
    mem_available_bytes: int | None = None,
) -> str:
    """One line naming how ``program`` ended (``phase``: "while loading", "mid-run") and why.

    A signal is named with its likely cause and the fix; an ordinary exit with its code and the
    log's most telling line.
    """
    at = f" {phase}" if phase else ""
    if returncode is None:
        return f"{program} ended{at} with no exit status: {last_cause_line(log_tail)}"
    sig = signal_name(returncode)
    if sig is None:
        return f"{program} exited with code {returncode}{at}: {last_cause_line(log_tail)}"
    if sig == "SIGILL":
        return (
            f"{program} was killed by SIGILL (illegal instruction){at}: this llama.cpp build uses CPU "
            f"instructions this machine will not run (e.g. AMX or AVX-512 that a VM reports but "
            f"does not give); {REBUILD_ADVICE}"
        )
    if sig == "SIGKILL":
        return (
            f"{program} was killed by SIGKILL{at}, most likely by the kernel's OOM killer: "
            f"{_gb(mem_available_bytes)} of memory available now, model file(s) {_gb(model_bytes)}; "
            "free memory or use a smaller model or context ('dmesg' shows 'Out of memory' if so)"
        )
    if sig in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE"):
        return f"{program} crashed with {sig}{at}: {last_cause_line(log_tail)}"
    return f"{program} was killed by {sig}{at}: {last_cause_line(log_tail)}"


def mem_available_bytes(meminfo: str) -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` text, in bytes; None if absent."""
    m = re.search(r"^MemAvailable:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None
