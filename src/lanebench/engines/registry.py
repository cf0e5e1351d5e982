"""The engine registry: one class per engine name, found by a lane's ``engine`` field.

An engine is one module holding an ``Engine`` subclass decorated with ``@register``; importing
the module registers it (modelled on ``ModelBase.register`` in llama.cpp's
``convert_hf_to_gguf.py``). The registry imports, before it looks a name up:

- the built-in modules (``BUILTIN``, under ``lanebench.engines``);
- each module an installed package names under the entry-point group ``lanebench.engines``
  (``[project.entry-points."lanebench.engines"] toy = "toy_engine"``);
- each module in ``LANEBENCH_ENGINES`` (import paths separated by commas, e.g.
  ``LANEBENCH_ENGINES=my_engines.toy``), for a module that is not packaged.

A module that cannot be imported is one line naming where it was asked for.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from lanebench.engines.base import Engine
from lanebench.errors import BadInput

BUILTIN = ("llamacpp.engine", "openai", "vllm", "sglang", "ollama")  # modules under lanebench.engines
ENTRY_POINT_GROUP = "lanebench.engines"
ENV_VAR = "LANEBENCH_ENGINES"
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


def unregister(name: str) -> None:
    """Forget an engine (a test's toy one) under every name it was registered with."""
    cls = _ENGINES.get(name)
    for n in [n for n, c in _ENGINES.items() if c is cls]:
        del _ENGINES[n]


def _import(module: str, source: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:
        raise BadInput(
            f"{source}: cannot import engine module {module!r} ({type(exc).__name__}: {exc})"
        ) from None


def _load() -> None:
    """The built-in and entry-point modules once; ``LANEBENCH_ENGINES``' on every lookup (an
    import already done costs a dict lookup)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            importlib.import_module(f"lanebench.engines.{module}")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _import(ep.module, f"entry point {ep.name!r} of group {ENTRY_POINT_GROUP!r}")
    for module in os.environ.get(ENV_VAR, "").split(","):
        if module.strip():
            _import(module.strip(), ENV_VAR)


def known() -> list[str]:
    _load()
    return sorted({cls.name for cls in _ENGINES.values()})


def takers(field: str) -> list[str]:
    """The engines whose ``lane_fields`` include the engine-only lane field ``field``."""
    _load()
    return sorted({cls.name for cls in _ENGINES.values() if field in cls.lane_fields})


def get_engine(name: str, source: str = "field 'engine'") -> Engine:
    """A new instance of the engine called ``name``; an unknown name lists the known ones."""
    _load()
    cls = _ENGINES.get(name)
    if cls is None:
        raise BadInput(f"{source}: unknown engine {name!r} (known: {', '.join(known())})")
    return cls()
