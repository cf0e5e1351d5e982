"""Reading files a user hands us: parser limits are bad input, every field is typed and bounded.

JSON and TOML parsers fail in ways of their own on hostile input (``RecursionError`` on deep
nesting, ``ValueError`` on integers of thousands of digits); here they become ``BadInput``
naming the file. A parsed document is then walked once, without recursion, so nothing later
meets nesting deeper than ``MAX_DEPTH`` or an integer outside 64 bits. ``Fields`` reads one
JSON object with the type and range each field must have, naming file and field on refusal.
"""

from __future__ import annotations

import json
import reprlib
import tomllib
from pathlib import Path
from typing import Any

from lanebench.errors import BadInput

MAX_DEPTH = 32  # tables/arrays inside each other; real configs and lanes files use 3 or 4
INT64 = (-(1 << 63), (1 << 63) - 1)
U32_MAX = (1 << 32) - 1
I32_MAX = (1 << 31) - 1
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = _SHOW.maxlong = 40
_SHOW.maxlevel = 2


def show(value: Any) -> str:
    """A short repr of ``value`` for an error message (at most a few dozen characters)."""
    return _SHOW.repr(value)


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``; BadInput if it cannot be read or is larger than ``limit`` bytes."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise BadInput(f"{path}: {what} is larger than {limit:,} bytes")
    return data


def check_tree(value: Any, where: str) -> None:
    """BadInput if ``value`` nests deeper than MAX_DEPTH or holds an integer outside 64 bits."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth >= MAX_DEPTH:
                raise BadInput(f"{where}: nested more than {MAX_DEPTH} levels deep")
            items = v.values() if isinstance(v, dict) else v
            stack.extend((x, depth + 1) for x in items)
        elif isinstance(v, int) and not INT64[0] <= v <= INT64[1]:
            raise BadInput(f"{where}: an integer of {v.bit_length()} bits (more than 64)")


def load_json(data: bytes, where: str) -> Any:
    """Parse JSON ``data``; BadInput naming ``where`` for anything that is not plain JSON."""
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise BadInput(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise BadInput(f"{where}: not valid JSON ({exc})") from None
    check_tree(value, where)
    return value


def load_toml(text: str, where: str) -> dict[str, Any]:
    """Parse TOML ``text``; BadInput naming ``where`` on syntax, nesting or integer limits."""
    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:
        raise BadInput(f"{where}: not valid TOML (nested too deeply)") from None
    except ValueError as exc:
        raise BadInput(f"{where}: not valid TOML ({exc})") from None
    check_tree(value, where)
    return value


_REQUIRED: Any = object()


class Fields:
    """Typed, bounded reads of one JSON object; errors name the file and the dotted field."""

    def __init__(self, data: Any, file: str, prefix: str = "") -> None:
        if not isinstance(data, dict):
            what = f"field '{prefix[:-1]}'" if prefix else "the document"
            raise BadInput(f"{file}: {what} is {show(data)}, expected a JSON object")
        self.data, self.file, self.prefix = data, file, prefix

    def fail(self, key: str, value: Any, expected: str) -> BadInput:
        return BadInput(f"{self.file}: field '{self.prefix}{key}' is {show(value)}, expected {expected}")

    def _get(self, key: str, default: Any) -> Any:
        value = self.data.get(key)
        if value is None:
            if default is _REQUIRED:
                raise BadInput(f"{self.file}: field '{self.prefix}{key}' is missing")
            return default
        return value

    def integer(self, key: str, lo: int = 1, hi: int = I32_MAX, default: Any = _REQUIRED) -> int:
        """An integer in [lo, hi] (a JSON boolean is not one)."""
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(key, v, f"an integer in [{lo}, {hi}]")
        return v

    def number(self, key: str, lo: float, hi: float, default: Any = _REQUIRED) -> float:
        """A finite number in [lo, hi]."""
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise self.fail(key, v, f"a number in [{lo:g}, {hi:g}]")
        return float(v)

    def flag(self, key: str, default: Any = _REQUIRED) -> bool:
        v = self._get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, v, "true or false")
        return v

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        v = self._get(key, default)
        if not isinstance(v, str):
            raise self.fail(key, v, "a string")
        return v

    def str_list(self, key: str, choices: tuple[str, ...], max_len: int) -> list[str]:
        """A non-empty list of at most ``max_len`` strings, each one of ``choices``."""
        v = self._get(key, _REQUIRED)
        expected = f"a list of 1 to {max_len} of {', '.join(map(repr, choices))}"
        if not isinstance(v, list) or not 1 <= len(v) <= max_len:
            raise self.fail(key, v, expected)
        for i, x in enumerate(v):
            if x not in choices:
                raise self.fail(f"{key}[{i}]", x, " or ".join(map(repr, choices)))
        return v

    def table(self, key: str, required: bool = False) -> Fields:
        """The JSON object under ``key`` (an empty one when absent and not ``required``)."""
        v = self._get(key, _REQUIRED if required else {})
        return Fields(v, self.file, f"{self.prefix}{key}.")
