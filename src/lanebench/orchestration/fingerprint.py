"""Fingerprints: what exactly produced a number (the host, model files; an engine's build is
the engine's own ``fingerprint`` hook).

A model's content hash is cached by resolved path, size and mtime in lanebench's cache dir
(``host.filehash``), so a 13 GB file is hashed once. Every collector tolerates missing tools and
files: a fingerprint says what it could learn, and why not where it could not.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lanebench.gguf import keys as K
from lanebench.host.filehash import file_sha256, load_cache, store_cache
from lanebench.host.hostinfo import host_details


def host_fingerprint() -> dict[str, Any]:
    """CPU, cores/threads, RAM, OS, kernel and GPUs (where tools exist to ask)."""
    return host_details()


# models --------------------------------------------------------------------------------------
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
    cached = load_cache().get(key)
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
    store_cache(key, out)
    return out
