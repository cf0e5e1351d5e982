"""The metadata lanebench reads from a GGUF: checked once, then one typed record per file.

``validate`` runs once when a file is opened. It checks every key registered in
``lanebench.gguf.keys`` (the common ones, and each head dialect's own) for the type and range
its Spec demands, and returns a :class:`Meta`: every known key's value, typed by its Key (an int
in range, a finite float, a bool, a str, one int per ``block_count`` layer, ...). Readers
downstream (check, translate, convert, roofline, the vocabulary) ask the record, never the raw
fields. Keys lanebench does not read are not checked beyond the format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar, overload

import numpy as np
from gguf import GGUFValueType

from lanebench.gguf import keys
from lanebench.gguf.keys import INT32_MAX, MAX_LAYERS, Key, Spec
from lanebench.gguf.layout import Field

T = GGUFValueType
INT_TYPES = frozenset({T.UINT8, T.INT8, T.UINT16, T.INT16, T.UINT32, T.INT32, T.UINT64, T.INT64})
FLOAT_TYPES = frozenset({T.FLOAT32, T.FLOAT64})
V = TypeVar("V")
D = TypeVar("D")


class BadMetadata(Exception):
    """A key's value has the wrong type or range: ``key``, ``expected``, ``found``."""

    def __init__(self, key: str, expected: str, found: str) -> None:
        super().__init__(f"key {key!r}: expected {expected}, found {found}")
        self.key, self.expected, self.found = key, expected, found


def describe(f: Field) -> str:
    """A short, one-line account of a field's type and value, for error messages."""
    if f.is_array:
        return f"an array of {len(f.value)} {f.types[1].name.lower()}"
    text = repr(f.value)
    return f"{f.types[0].name.lower()} {text if len(text) <= 40 else text[:37] + '...'}"


class Meta:
    """The checked metadata of one GGUF: each known key's value, typed by its Key (see ``_decode``).

    ``get(key)`` is None (or the default given) when the file has no such key."""

    __slots__ = ("_values", "arch")

    def __init__(self, arch: str, values: Mapping[str, Any]) -> None:
        self.arch = arch
        self._values = dict(values)  # by key template

    @overload
    def get(self, key: Key[V]) -> V | None: ...
    @overload
    def get(self, key: Key[V], default: D) -> V | D: ...
    def get(self, key: Key[Any], default: Any = None) -> Any:
        return self._values.get(key.template, default)

    def has(self, key: Key[Any]) -> bool:
        return key.template in self._values

    def name(self, key: Key[Any]) -> str:
        """The key's full name in this file (for messages)."""
        return key.name(self.arch)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Meta:
        """A record from plain values by full key name (what a test or another reader built),
        decoded as a file's are; BadMetadata for a per-layer list of the wrong length."""
        arch = str(values.get(keys.ARCHITECTURE.template) or "")
        raw_n = values.get(keys.BLOCK_COUNT.name(arch)) if arch else None
        n_layer = int(raw_n) if raw_n is not None else None
        out: dict[str, Any] = {}
        for key in keys.known():
            name = key.name(arch)
            if values.get(name) is None or (key.scoped and not arch):
                continue
            value = values[name]
            wrong = key.spec.kind == "layers" and isinstance(value, list | tuple) and len(value) != n_layer
            if wrong and n_layer is not None:
                raise BadMetadata(name, f"{n_layer} values (one per block_count layer)", f"{len(value)}")
            out[key.template] = _decode(value, key.spec, n_layer)
        return cls(arch, out)


def validate(fields: Mapping[str, Field]) -> Meta:
    """The record of ``fields``; BadMetadata for the first known key whose type or range is wrong."""
    known = keys.known()
    for key in known:
        if not key.scoped and key.template in fields:
            _check(fields[key.template], key.spec, None)
    arch = str(fields[keys.ARCHITECTURE.template].value) if keys.ARCHITECTURE.template in fields else ""
    n_layer = None
    block_count = fields.get(keys.BLOCK_COUNT.name(arch)) if arch else None
    if block_count is not None:
        _check(block_count, keys.BLOCK_COUNT.spec, None)
        n_layer = int(block_count.value)
    for key in known:
        if arch and key.scoped and key.name(arch) in fields:
            _check(fields[key.name(arch)], key.spec, n_layer)
    tokens = fields.get(keys.TOKENS.template)
    for per_token in keys.PER_TOKEN:
        f = fields.get(per_token.template)
        if tokens is not None and f is not None and len(f.value) != len(tokens.value):
            raise BadMetadata(
                f.name, f"{len(tokens.value)} entries (one per token)", f"{len(f.value)} entries"
            )
    values = {}
    for key in known:
        name = key.name(arch) if key.scoped else key.template
        if (arch or not key.scoped) and name in fields:
            values[key.template] = _decode(fields[name].value, key.spec, n_layer)
    return Meta(arch, values)


def _decode(value: Any, spec: Spec, n_layer: int | None) -> Any:
    """A checked value as its Key's type: per-layer ints as a tuple of ``n_layer`` (a scalar
    repeated), a bool pattern as a tuple, strings as a tuple; numeric arrays as stored."""
    kind = spec.kind
    if kind == "layers":
        if isinstance(value, list | tuple | np.ndarray):
            return tuple(int(v) for v in value)
        return (int(value),) * (1 if n_layer is None else n_layer)
    if kind == "pattern":
        return tuple(bool(v) for v in value) if isinstance(value, list | tuple | np.ndarray) else int(value)
    if kind == "strs":
        return tuple(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return bool(value)
    return value


def _check(f: Field, spec: Spec, n_layer: int | None) -> None:
    kind = spec.kind
    if kind == "int" or (kind in ("layers", "pattern") and not f.is_array):
        return _int(f, spec.hi)
    if kind in ("layers", "pattern"):
        elem = "int" if kind == "layers" else "bool"
        _array_of(f, INT_TYPES if elem == "int" else frozenset({T.BOOL}), f"{elem}s")
        if n_layer is not None and len(f.value) != n_layer:
            raise BadMetadata(f.name, f"{n_layer} entries (one per block_count layer)", describe(f))
        if n_layer is None and len(f.value) > MAX_LAYERS:
            raise BadMetadata(f.name, f"at most {MAX_LAYERS} entries (one per layer)", describe(f))
        if elem == "int":
            _ints_in_range(f, INT32_MAX)
        return None
    if kind == "float":
        if f.types[0] not in FLOAT_TYPES or not math.isfinite(f.value):
            raise BadMetadata(f.name, "a finite float", describe(f))
    elif kind == "bool":
        if f.types[0] != T.BOOL:
            raise BadMetadata(f.name, "a bool", describe(f))
    elif kind in ("str", "name"):
        if f.types[0] != T.STRING:
            raise BadMetadata(f.name, "a string", describe(f))
        if kind == "name" and not f.value.isprintable():
            raise BadMetadata(f.name, "a name without control characters", describe(f))
    elif kind == "strs":
        _array_of(f, frozenset({T.STRING}), "strings")
    elif kind == "floats":
        _array_of(f, FLOAT_TYPES, "floats")
    elif kind == "ints":
        _array_of(f, INT_TYPES, "ints")
    return None


def _int(f: Field, hi: int) -> None:
    if f.types[0] not in INT_TYPES or not 0 <= f.value <= hi:
        raise BadMetadata(f.name, f"an integer 0..{hi}", describe(f))


def _array_of(f: Field, types: frozenset[GGUFValueType], what: str) -> None:
    if not f.is_array or f.types[1] not in types:
        raise BadMetadata(f.name, f"an array of {what}", describe(f))


def _ints_in_range(f: Field, hi: int) -> None:
    values = np.asarray(f.value)
    if values.size and (int(values.min()) < 0 or int(values.max()) > hi):
        raise BadMetadata(f.name, f"integers 0..{hi}", f"{int(values.min())}..{int(values.max())}")
