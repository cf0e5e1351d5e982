"""Fingerprints: what exactly produced a number (host, engine build, model files).

A model's content hash is cached by resolved path, size and mtime in lanebench's cache dir, so
a 13 GB file is hashed once. Every collector tolerates missing tools and files: a fingerprint
says what it could learn, and why not where it could not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lanebench.config.models import cache_dir
from lanebench.engines.llamacpp.devices import list_devices
from lanebench.engines.llamacpp.dialect import parse_version_line
from lanebench.gguf import keys as K
from lanebench.host.hostinfo import host_details

HASH_CHUNK = 8 << 20
CACHE_FILE = "fingerprints.json"
_BUILT_WITH_RE = re.compile(r"built with (.+?) for (\S+)")


def host_fingerprint() -> dict[str, Any]:
    """CPU, cores/threads, RAM, OS, kernel and GPUs (where tools exist to ask)."""
    return host_details()


# builds --------------------------------------------------------------------------------------
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
    from lanebench.engines.llamacpp.discovery import ensure_package_libs

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


# models --------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 8 MiB chunks, cached by path + size + mtime."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache = _load_cache()
    if key in cache:
        return str(cache[key])
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    _store_cache(key, digest)
    return digest


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _load_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store_cache(key: str, value: Any) -> None:
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**_load_cache(), key: value}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def gguf_summary(path: Path) -> dict[str, Any]:
    """Architecture, name, quantisation mix (tensor count and bytes per type), parameter count."""
    try:
        from lanebench.gguf.reader import open_gguf
    except ImportError:  # pragma: no cover - the reader ships with lanebench
        return _plain_gguf_summary(path)
    g = open_gguf(path, "model fingerprint")
    return _summary(g.get, [(t.type_name, t.n_bytes, t.n_elements) for t in g.tensors.values()])


def _plain_gguf_summary(path: Path) -> dict[str, Any]:
    from gguf import GGMLQuantizationType, GGUFReader

    r = GGUFReader(path)

    def get(key: str, default: Any = None) -> Any:
        f = r.fields.get(key)
        return default if f is None else f.contents()

    tensors = [
        (GGMLQuantizationType(t.tensor_type).name, int(t.n_bytes), int(t.n_elements)) for t in r.tensors
    ]
    return _summary(get, tensors)


def _summary(get: Any, tensors: list[tuple[str, int, int]]) -> dict[str, Any]:
    mix: dict[str, dict[str, int]] = defaultdict(lambda: {"tensors": 0, "bytes": 0, "params": 0})
    for type_name, n_bytes, n_el in tensors:
        mix[type_name]["tensors"] += 1
        mix[type_name]["bytes"] += n_bytes
        mix[type_name]["params"] += n_el
    ordered = dict(sorted(mix.items(), key=lambda kv: -kv[1]["bytes"]))
    file_type = get(K.FILE_TYPE.template)
    return {
        "arch": get(K.ARCHITECTURE.template),
        "name": get(K.NAME.template),
        "size_label": get(K.SIZE_LABEL.template),
        "file_type": file_type,
        "file_type_name": _file_type_name(file_type),
        "n_params": sum(n for _, _, n in tensors),
        "n_tensors": len(tensors),
        "quant_mix": ordered,
        "main_quant": next(iter(ordered), None),
    }


def _file_type_name(value: Any) -> str | None:
    """``15`` → ``Q4_K_M`` (llama.cpp's ``general.file_type``)."""
    from gguf import LlamaFileType

    try:
        return LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):
        return None


def model_fingerprint(path: Path) -> dict[str, Any]:
    """Path, size in bytes, sha256, GGUF architecture, quantisation mix, parameter count.

    The whole answer is cached by path + size + mtime: a re-run costs one ``stat``.
    """
    st = path.stat()
    key = f"model2|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cached = _load_cache().get(key)
    if isinstance(cached, dict):
        return cached
    out: dict[str, Any] = {
        "path": str(path),
        "file": path.name,
        "size_bytes": st.st_size,
        "mtime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds"),
        "sha256": file_sha256(path),
    }
    try:
        out.update(gguf_summary(path))
    except Exception as exc:
        out["gguf_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    _store_cache(key, out)
    return out
