"""``lanebench gguf inspect``: what a GGUF is, in one dictionary.

Architecture, kind (``head-<dialect>`` for a registered head dialect, e.g. ``head-upstream``
for ``gemma4-assistant``, ``head-atomic`` for the older ``gemma4_assistant`` shape; a plain
model; unknown), the key metadata, tensor count/types/bytes, parameter
count, vocabulary size and a hash of the token texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gguf import MODEL_ARCH_NAMES

from lanebench.gguf import heads
from lanebench.gguf import keys as K
from lanebench.gguf.reader import GgufFile, open_gguf
from lanebench.gguf.tokenizer import vocab_of

KNOWN_ARCHS = set(MODEL_ARCH_NAMES.values())
_MAX_ARRAY = 64  # longer arrays are summarised


def kind_of(g: GgufFile) -> str:
    """Which kind of file ``g`` is: ``head-<dialect>``, ``model`` or ``unknown``."""
    d = heads.of_arch(g.arch)
    if d is not None:
        return f"head-{d.name}"
    if g.arch in KNOWN_ARCHS and "token_embd.weight" in g.tensors:
        return "model"
    return "unknown"


def _value(g: GgufFile, key: str) -> Any:
    """The value of ``key``; arrays longer than ``_MAX_ARRAY`` as a count, unread."""
    if g.fields[key].is_array and g.count(key) > _MAX_ARRAY:
        return f"[{g.count(key)} items]"
    return g.get(key)


def inspect_gguf(path: Path) -> dict[str, Any]:
    """A JSON-able description of the GGUF at ``path``."""
    g = open_gguf(path, "inspect")
    types: dict[str, dict[str, int]] = {}
    for t in g.tensors.values():
        entry = types.setdefault(t.type_name, {"tensors": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["bytes"] += t.n_bytes
    v = vocab_of(g)
    arch_keys = {k: _value(g, k) for k in g.fields if k.startswith(f"{g.arch}.")}
    other = {
        k: _value(g, k)
        for k in g.fields
        if k.startswith(("general.", "lanebench.")) and k != K.ARCHITECTURE.template
    }
    return {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "architecture": g.arch,
        "kind": kind_of(g),
        "metadata": {**arch_keys, **other},
        "tensor_count": len(g.tensors),
        "tensor_types": types,
        "tensor_bytes": sum(t.n_bytes for t in g.tensors.values()),
        "parameters": sum(t.n_elements for t in g.tensors.values()),
        "vocab": {
            "model": v.model,
            "size": v.n_tokens,
            "tokens_sha256_16": v.hash_all,
            "bos": v.bos,
            "eos": v.eos,
            "add_bos": v.add_bos,
            "add_eos": v.add_eos,
        },
    }
