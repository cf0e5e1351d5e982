"""The engine registry: one class per engine name, found by a lane's ``engine`` field.

Adding an engine is one module holding an ``Engine`` subclass decorated with ``@register``,
plus its module name in ``BUILTIN`` (modelled on ``ModelBase.register`` in llama.cpp's
``convert_hf_to_gguf.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from lanebench.engines.base import Engine
from lanebench.errors import BadInput

BUILTIN = ("llamacpp.engine", "openai", "vllm", "sglang", "ollama")  # modules under lanebench.engines
_ENGINES: dict[str, type[Engine]] = {}
_loaded = False
E = TypeVar("E", bound=type[Engine])


def register(*names: str) -> Callable[[E], E]:
    """Class decorator: make an engine known under ``names`` (the first is its own name)."""

    def wrap(cls: E) -> E:
        for n in names:
            if n in _ENGINES and _ENGINES[n] is not cls:
                raise ValueError(f"engine name {n!r} is registered twice")
            _ENGINES[n] = cls
        cls.name = names[0]
        return cls

    return wrap


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            importlib.import_module(f"lanebench.engines.{module}")


def known() -> list[str]:
    _load_builtin()
    return sorted({cls.name for cls in _ENGINES.values()})


def get_engine(name: str, source: str = "field 'engine'") -> Engine:
    """A new instance of the engine called ``name``; an unknown name lists the known ones."""
    _load_builtin()
    cls = _ENGINES.get(name)
    if cls is None:
        raise BadInput(f"{source}: unknown engine {name!r} (known: {', '.join(known())})")
    return cls()
