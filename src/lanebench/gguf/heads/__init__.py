"""Gemma 4 assistant (MTP) heads in GGUF: one registered class per dialect.

``base`` holds what every dialect shares and the registry; ``upstream`` and ``atomic`` are the
two dialects builds load today. Adding a dialect is one new module with one ``HeadDialect``
subclass, imported once (docs/heads.md, "Adding a dialect"). The functions below take a
dialect's name, as the CLI does.
"""

from __future__ import annotations

# defining a class registers it; upstream first, the order dialects are listed in
# isort: off
from lanebench.gguf.heads import upstream  # noqa: F401
from lanebench.gguf.heads import atomic  # noqa: F401

# isort: on
from lanebench.gguf.heads.base import (
    TARGET_ARCH,
    HeadDialect,
    HeadParams,
    archs,
    dialect,
    for_server,
    names,
    of_arch,
    unregister,
)
from lanebench.gguf.writer import KV

__all__ = [
    "TARGET_ARCH",
    "HeadDialect",
    "HeadParams",
    "archs",
    "dialect",
    "expected_tensors",
    "for_server",
    "format_of_arch",
    "head_kvs",
    "names",
    "of_arch",
    "optional_tensors",
    "rename_tensor",
    "tensor_name",
    "unregister",
]


def format_of_arch(arch: str) -> str | None:
    """The name of the dialect an architecture string belongs to (None: not a head)."""
    d = of_arch(arch)
    return d.name if d is not None else None


def head_kvs(hp: HeadParams, name: str) -> list[KV]:
    """Architecture metadata of a head in dialect ``name``."""
    return dialect(name).kvs(hp)


def tensor_name(upstream_name: str, name: str) -> str:
    """The name a tensor carries in dialect ``name``, given its upstream name."""
    return dialect(name).tensor_name(upstream_name)


def rename_tensor(tensor: str, src: str, dst: str) -> str:
    """Rename a tensor from dialect ``src`` to ``dst`` (unchanged when src == dst)."""
    return dialect(dst).tensor_name(dialect(src).upstream_name(tensor))


def expected_tensors(hp: HeadParams, n_vocab: int, name: str) -> dict[str, tuple[int, ...]]:
    """Tensors the loader of dialect ``name`` requires, llama.cpp-order shapes."""
    return dialect(name).expected_tensors(hp, n_vocab)


def optional_tensors(name: str) -> set[str]:
    return dialect(name).optional_tensors()
