"""Content hashes of files on this machine (builds, models), cached in lanebench's cache dir by
resolved path, size and mtime, so a 13 GB file is hashed once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lanebench.config.models import cache_dir

HASH_CHUNK = 8 << 20
CACHE_FILE = "fingerprints.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 8 MiB chunks, cached by path + size + mtime."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache = load_cache()
    if key in cache:
        return str(cache[key])
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    store_cache(key, digest)
    return digest


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def load_cache() -> dict[str, Any]:
    """Everything cached so far (empty when the file is missing or unreadable)."""
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def store_cache(key: str, value: Any) -> None:
    """Add one entry (written whole, atomically); a cache that cannot be written only costs time."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**load_cache(), key: value}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass
