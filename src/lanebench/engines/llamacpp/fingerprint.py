"""What exactly a llama.cpp build is (``LlamaCpp.fingerprint``): its version line, compiler,
backend libraries, devices, file hash and flag dialect; and the backends a server log named
(``LlamaCpp.backends``). Every collector tolerates missing tools and files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from lanebench.engines.llamacpp.devices import list_devices
from lanebench.engines.llamacpp.dialect import parse_version_line
from lanebench.engines.llamacpp.discovery import ensure_package_libs
from lanebench.host.filehash import file_sha256

_BUILT_WITH_RE = re.compile(r"built with (.+?) for (\S+)")


def parse_version(text: str) -> dict[str, Any]:
    """``llama-server --version`` text: version, build number, commit, compiler, target."""
    out: dict[str, Any] = {"version_text": text.strip()}
    if parsed := parse_version_line(text):
        out.update(zip(("version", "build", "commit"), parsed, strict=True))
    if m := _BUILT_WITH_RE.search(text):
        out.update(compiler=m[1], target=m[2])
    return out


def backend_libs(binary: Path) -> list[str]:
    """Backends shipped next to the binary (``libggml-cuda.so`` → ``cuda``), base excluded."""
    names: set[str] = set()
    for d in {binary.parent, binary.parent.parent / "lib"}:
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        for f in entries:
            m = re.fullmatch(r"(?:lib)?ggml-([\w-]+)\.(?:so|dylib|dll)", f.name)
            if m and m[1] != "base":
                names.add(m[1])
    return sorted(names)


def build_fingerprint(binary: Path, dialect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Version line, compiler, backend libraries, file hash and flag dialect of a build."""
    ensure_package_libs()
    out: dict[str, Any] = {"path": str(binary)}
    try:
        proc = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60, errors="replace"
        )
        out.update(parse_version(proc.stdout + proc.stderr))
    except (OSError, subprocess.SubprocessError) as exc:
        out["error"] = f"--version failed: {exc}"
    out["backend_libs"] = backend_libs(binary)
    found = list_devices(binary) if binary.is_file() else None
    out["devices"] = [d.to_dict() for d in found] if found is not None else None
    if binary.is_file():
        out.update(size_bytes=binary.stat().st_size, sha256=file_sha256(binary))
    if dialect:
        out["dialect"] = {k: dialect.get(k) for k in ("speculative", "can_mtp", "spec_types", "kv_types")}
    return out


_BACKEND_PATTERNS = (
    re.compile(r"load_backend: loaded (\S+) backend"),
    re.compile(r"using device (\S+ \([^)]*\))"),
    re.compile(r"ggml_vulkan: \d+ = ([^|]+?)\s*\|"),
    re.compile(r"^\s*Device \d+: ([^,]+), compute capability", re.M),
    re.compile(r"ggml_metal_init: found device: (.+)$", re.M),
)


def backends_from_log(text: str) -> list[str]:
    """Backends and devices a llama-server log says it loaded or used, in order, unique."""
    found: list[str] = []
    for pat in _BACKEND_PATTERNS:
        found += [m.strip() for m in pat.findall(text)]
    if "system_info:" in text and "CPU" not in found:
        found.append("CPU")
    return list(dict.fromkeys(found))


def log_backends(log_path: Path | None, limit: int = 4_000_000) -> list[str]:
    """The compute backends a lane's server log named (empty without a log); reads at most
    ``limit`` characters."""
    if not log_path:
        return []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return backends_from_log(f.read(limit))
    except OSError:
        return []
