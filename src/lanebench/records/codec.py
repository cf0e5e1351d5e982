"""Records to JSON-ready data and back: one converter for every record, driven by the types of
its fields, so a field added to a record is written (``--json``, the store) and read back with no
other change.

``to_data`` turns a record (a dataclass), an enum, a pydantic model, a list or a dict into plain
JSON values. ``from_data(cls, d)`` builds ``cls`` from such a dict and reads documents written by other
lanebench versions: unknown keys are ignored, and a missing or null field takes its default (a
column an older schema lacked reads as NULL). A value of the wrong kind raises ``TypeError``
naming the field, except where a *lenient* record is expected (``Record.lenient``: figures that
a hand-edited document may hold anything in): there it takes the field's default, and an item of
the wrong kind in a list or dict of the record is left out.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from functools import cache
from pathlib import PurePath
from typing import Any, Literal, Self, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

T = TypeVar("T")


class Mismatch(Exception):
    """A value is not of the kind its field holds."""


class Record:
    """Base of lanebench's records (``@dataclass(slots=True)`` subclasses): ``to_dict`` and
    ``from_dict`` derived from the fields. A record whose document carries more (a value
    derived for readers) or needs a fix-up on reading overrides one of them."""

    __slots__ = ()
    lenient: typing.ClassVar[bool] = False  # wrong kinds read as defaults (see the module's docstring)

    def to_dict(self) -> dict[str, Any]:
        return fields_data(self)

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        return from_data(cls, data)


def _key(k: Any) -> Any:
    return k.value if isinstance(k, enum.Enum) else k


def to_data(obj: Any) -> Any:
    """``obj`` as JSON values: records through their ``to_dict``, enums as their values, pydantic
    models as their JSON dump, tuples as lists, paths as strings."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        custom = getattr(obj, "to_dict", None)
        return custom() if custom is not None else fields_data(obj)
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return {_key(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_data(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


def fields_data(obj: Any, names: typing.Container[str] | None = None) -> dict[str, Any]:
    """The fields of the dataclass ``obj`` (those in ``names``, when given) as JSON values."""
    return {
        f.name: to_data(getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if names is None or f.name in names
    }


@cache
def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, resolved type, required) of each field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    missing = dataclasses.MISSING
    return tuple(
        (f.name, hints[f.name], f.default is missing and f.default_factory is missing)
        for f in dataclasses.fields(cls)
        if f.init
    )


def _names_lenient(hint: Any) -> bool:
    """The type is, or may be, a lenient record."""
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    return any(isinstance(a, type) and getattr(a, "lenient", False) for a in args)


def from_data(cls: type[T], data: Any) -> T:
    """``cls`` (a dataclass) from a dict as ``to_data`` writes it; see the module's docstring."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    lenient = getattr(cls, "lenient", False)
    kwargs: dict[str, Any] = {}
    for name, hint, required in _fields(typing.cast(type, cls)):
        value = data.get(name)
        if name not in data or (value is None and not required):
            continue
        try:
            kwargs[name] = convert(hint, value, lenient)
        except Mismatch:
            if required or not (lenient or _names_lenient(hint)):
                raise TypeError(f"{cls.__name__}.{name}: unexpected value {value!r}"[:200]) from None
    return cls(**kwargs)


def _union(hint: Any, value: Any, lenient: bool) -> Any:
    args = get_args(hint)
    for arg in args:
        if arg is not type(None):
            try:
                return convert(arg, value, lenient)
            except Mismatch:
                pass
    raise Mismatch


def _items(hint: Any, value: Any, lenient: bool) -> Any:
    """A list or dict; an item of the wrong kind is left out when ``lenient``, a null value of a
    dict always (it is not there)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise Mismatch
        out: dict[Any, Any] = {}
        for k, v in value.items():
            try:
                if v is not None or (args and get_origin(args[1]) in (Union, types.UnionType)):
                    out[convert(args[0], k) if args else k] = convert(args[1], v, lenient) if args else v
            except Mismatch:
                if not lenient:
                    raise
        return out
    if not isinstance(value, list | tuple):
        raise Mismatch
    item = args[0] if args else Any
    kept = []
    for v in value:
        try:
            kept.append(convert(item, v, lenient))
        except Mismatch:
            if not lenient:
                raise
    return tuple(kept) if origin is tuple else kept


def _record(hint: type, value: Any) -> Any:
    if isinstance(value, hint):
        return value
    if not isinstance(value, dict):
        raise Mismatch
    try:
        if issubclass(hint, BaseModel):
            return hint.model_validate(value)
        reader = getattr(hint, "from_dict", None)
        return reader(value) if reader is not None else from_data(hint, value)
    except (TypeError, ValueError, ValidationError):
        raise Mismatch from None


def _scalar(hint: type, value: Any) -> Any:
    if issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise Mismatch from None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is float and number:
        return value
    if hint is int and number and isinstance(value, int):
        return value
    if hint not in (int, float) and isinstance(value, hint):
        return value
    raise Mismatch


def convert(hint: Any, value: Any, lenient: bool = False) -> Any:
    """``value`` as the type ``hint`` says; ``Mismatch`` when it is not of that kind."""
    origin = get_origin(hint)
    if hint is Any or hint is object:
        return value
    if value is None:
        if hint is type(None) or (origin in (Union, types.UnionType) and type(None) in get_args(hint)):
            return None
        raise Mismatch
    if origin in (Union, types.UnionType):
        return _union(hint, value, lenient)
    if origin is Literal:
        if value in get_args(hint):
            return value
        raise Mismatch
    if origin in (list, tuple, dict):
        return _items(hint, value, lenient)
    if dataclasses.is_dataclass(hint) or (isinstance(hint, type) and issubclass(hint, BaseModel)):
        return _record(hint, value)  # type: ignore[arg-type]
    if isinstance(hint, type):
        return _scalar(hint, value)
    return value
