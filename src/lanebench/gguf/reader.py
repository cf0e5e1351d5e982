"""Open a GGUF once (cached by path, size and mtime) and read its keys and tensors.

Every file is checked when it is opened, in two steps: its layout (``layout.parse``: every
count and length bounded by the file's size, both byte orders) and the metadata lanebench
reads (``meta.validate``: types and ranges; it gives the file's typed ``Meta``). Whatever
fails becomes one ``BadInput`` line naming the file, the field and what was expected. Shapes
are given in llama.cpp order (``ne0`` first), as its loader prints and checks them.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFValueType

from lanebench.errors import BadInput
from lanebench.gguf import keys
from lanebench.gguf.layout import Field, Layout, Malformed, RawTensor, parse
from lanebench.gguf.magic import check_gguf_file
from lanebench.gguf.meta import BadMetadata, Meta, validate


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor: name, llama.cpp-order shape, ggml type, bytes in the file."""

    name: str
    shape: tuple[int, ...]
    type_name: str
    n_bytes: int
    n_elements: int


class GgufFile:
    """Keys and tensors of one checked GGUF file; tensor data stays memory-mapped. ``meta`` is
    its typed metadata record; ``fields`` the raw key-value pairs (for verbatim copies)."""

    def __init__(self, path: Path, layout: Layout, buf: Any, meta: Meta) -> None:
        self.path = path
        self.layout = layout
        self.meta = meta
        self.byte_order = layout.byte_order
        self.fields: dict[str, Field] = layout.fields
        self._buf = buf
        self._raw = {t.name: t for t in layout.tensors}
        self._hashes: dict[int, str] = {}
        self.tensors = {
            t.name: TensorInfo(t.name, t.shape, t.ggml_type.name, t.n_bytes, t.n_elements)
            for t in layout.tensors
        }

    @property
    def arch(self) -> str:
        return self.meta.arch

    @property
    def raw_tensors(self) -> list[RawTensor]:
        """The tensors in file order, with their types and data offsets."""
        return self.layout.tensors

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (arrays as lists), or ``default`` when absent."""
        field = self.fields.get(key)
        return default if field is None else field.contents()

    def arch_key(self, suffix: str, default: Any = None) -> Any:
        """``{arch}.{suffix}`` as stored (raw; lanebench's own readers ask ``meta``)."""
        return self.get(f"{self.arch}.{suffix}", default)

    def count(self, key: str) -> int:
        """Elements of ``key`` (1 for a scalar, 0 when absent), without reading them."""
        field = self.fields.get(key)
        return 0 if field is None else len(field.data)

    def field_type(self, key: str) -> tuple[GGUFValueType, ...]:
        field = self.fields.get(key)
        return tuple(field.types) if field is not None else ()

    def tensor_data(self, name: str) -> np.ndarray:
        """Raw bytes of one tensor as stored (memory-mapped, no copy)."""
        t = self._raw[name]
        return np.frombuffer(self._buf, dtype=np.uint8, count=t.n_bytes, offset=t.offset)

    def packed_value(self, key: str) -> bytes:
        """The stored bytes of ``key``'s value, type tag included (for verbatim copies)."""
        field = self.fields[key]
        return bytes(self._buf[field.value_offset : field.end])

    def tokens(self) -> list[str]:
        tokens: tuple[str, ...] = self.meta.get(keys.TOKENS, ())
        return list(tokens)

    @property
    def n_tokens(self) -> int:
        """Tokens in the vocabulary (0 without one)."""
        return len(self.meta.get(keys.TOKENS, ()))

    def vocab_hash(self, start: int = 0) -> str:
        """sha256 (first 16 hex digits) of the token texts from id ``start`` on, NUL-joined."""
        if start not in self._hashes:
            tokens = self.meta.get(keys.TOKENS, ())[start:]
            text = "\0".join(tokens) + "\0" if tokens else ""
            self._hashes[start] = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._hashes[start]


def load(path: Path) -> GgufFile:
    """Map and check ``path`` (uncached); Malformed, BadMetadata or OSError when it fails."""
    with path.open("rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file (it shrank since the magic was read)
            raise OSError(str(exc)) from None
    layout = parse(buf)
    return GgufFile(path, layout, buf, validate(layout.fields))


def problems(path: Path, rules: Callable[[GgufFile], list[str]] | None = None) -> list[str]:
    """What any reader would refuse in the file at ``path`` (its format, its metadata), then
    what ``rules`` find in it; [] = none. For a writer checking what it wrote."""
    try:
        g = load(path)
    except (Malformed, BadMetadata) as exc:
        return [str(exc)]
    return rules(g) if rules is not None else []


@lru_cache(maxsize=16)
def _open_cached(path: Path, size: int, mtime_ns: int) -> GgufFile:
    return load(path)


def open_gguf(path: Path, what: str = "GGUF") -> GgufFile:
    """Open ``path`` (cached while the file is unchanged); BadInput with one line."""
    path = Path(path)
    check_gguf_file(path, what)  # exists, is a file, starts with the magic: else BadInput (exit 2)
    st = path.stat()
    try:
        return _open_cached(path.resolve(), st.st_size, st.st_mtime_ns)
    except Malformed as exc:
        raise BadInput(f"{what}: {path} is truncated or corrupt ({st.st_size} bytes): {exc}") from None
    except BadMetadata as exc:
        raise BadInput(f"{what}: {path}: {exc}") from None
    except OSError as exc:
        raise BadInput(f"{what}: cannot read {path} ({exc.strerror or exc})") from None
