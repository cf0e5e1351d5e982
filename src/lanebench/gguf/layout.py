"""Parse a GGUF header with every count and length bounded by the bytes left in the file.

No count is trusted before it is checked against the file's size, so a corrupt count fails at
once, naming the field, instead of allocating or looping past the end. Both byte orders are
read the same way; gguf-py's ``GGUFReader`` is never used. The rules follow llama.cpp's
``gguf_init_from_file``: versions 2 and 3, unique keys and tensor names, no arrays of arrays,
at most 4 dimensions, tensor names under 64 bytes, whole blocks along ``ne0``, aligned
offsets, tensor data inside the file. Strings must be UTF-8.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from lanebench.gguf.keys import ALIGNMENT

T = GGUFValueType
VERSIONS = (2, 3)
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME_BYTES = 63  # GGML_MAX_NAME - 1
MAX_STRINGS = 1 << 24  # entries of one string array; real vocabularies hold ~10^5..10^6
INT64_MAX = (1 << 63) - 1
DEFAULT_ALIGNMENT = 32
_HEADER_BYTES = 24  # magic, version, tensor count, key-value count
_MIN_KV_BYTES = 8 + 4 + 1  # empty key, type tag, one-byte value
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # empty name, n_dims = 0, type, offset

# struct / numpy format codes (identical in both) of the fixed-size value types
SCALAR_CODES: dict[GGUFValueType, str] = {
    T.UINT8: "B",
    T.INT8: "b",
    T.UINT16: "H",
    T.INT16: "h",
    T.UINT32: "I",
    T.INT32: "i",
    T.FLOAT32: "f",
    T.BOOL: "?",
    T.UINT64: "Q",
    T.INT64: "q",
    T.FLOAT64: "d",
}


class Malformed(Exception):
    """The file breaks the GGUF format at ``where``: ``expected`` vs ``found``."""

    def __init__(self, where: str, expected: str, found: str) -> None:
        super().__init__(f"{where}: expected {expected}, found {found}")
        self.where, self.expected, self.found = where, expected, found


@dataclass(frozen=True, slots=True)
class Field:
    """One key-value pair. ``value``: a Python scalar, a numpy array (numeric arrays, in the
    file's byte order, not copied) or a tuple of str (string arrays)."""

    name: str
    offset: int  # first byte of the pair (the key's length)
    value_offset: int  # first byte of the value's type tag
    end: int  # one past the value's last byte
    types: tuple[GGUFValueType, ...]  # (ARRAY, element type) for arrays
    value: Any

    @property
    def is_array(self) -> bool:
        return self.types[0] == T.ARRAY

    @property
    def data(self) -> range:
        """One index per element (1 for a scalar): ``len(field.data)`` is the count."""
        return range(len(self.value) if self.is_array else 1)

    def contents(self) -> Any:
        """The value as plain Python: scalars as they are, arrays as lists."""
        if not self.is_array:
            return self.value
        if isinstance(self.value, np.ndarray):
            return self.value.tolist()
        return list(self.value)


@dataclass(frozen=True, slots=True)
class RawTensor:
    """One tensor's header entry, placed: shape in llama.cpp order (``ne0`` first)."""

    name: str
    ggml_type: GGMLQuantizationType
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    offset: int  # absolute byte offset of its data in the file


@dataclass(frozen=True, slots=True)
class Layout:
    """Everything in a GGUF's header, checked against the file's size."""

    byte_order: str  # "<" little-endian, ">" big-endian
    version: int
    alignment: int
    data_offset: int
    size: int
    fields: dict[str, Field]
    tensors: list[RawTensor]


class _Cursor:
    def __init__(self, buf: Any, byte_order: str, off: int) -> None:
        self.buf, self.bo, self.off, self.size = buf, byte_order, off, len(buf)

    def left(self) -> int:
        return self.size - self.off

    def need(self, n: int, where: str) -> None:
        if n > self.size - self.off:
            raise Malformed(where, f"{n} bytes at byte {self.off}", f"the file ends at byte {self.size}")

    def scalar(self, code: str, where: str) -> Any:
        n = struct.calcsize(code)
        self.need(n, where)
        (v,) = struct.unpack_from(self.bo + code, self.buf, self.off)
        self.off += n
        return v

    def count(self, where: str, item_bytes: int, what: str, cap: int = INT64_MAX) -> int:
        n = int(self.scalar("Q", where))
        room = self.left() // item_bytes
        if n > room or n > cap:
            limit = f"at most {min(room, cap)} {what} ({self.left()} bytes left at byte {self.off})"
            raise Malformed(where, limit, f"{n}")
        return n

    def vtype(self, where: str) -> GGUFValueType:
        raw = self.scalar("I", where)
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise Malformed(where, "a GGUF value type 0..12", str(raw)) from None

    def string(self, where: str) -> str:
        n = self.count(where + " length", 1, "bytes")
        raw = self.buf[self.off : self.off + n]
        self.off += n
        return _utf8(raw, where)


def _utf8(raw: bytes, where: str) -> str:
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(where, "UTF-8 text", f"byte 0x{raw[exc.start]:02x} at position {exc.start}") from None


def parse(buf: Any) -> Layout:
    """Parse the header of the GGUF in ``buf`` (bytes or an mmap); Malformed if it is not one."""
    size = len(buf)
    if size < _HEADER_BYTES:
        raise Malformed("header", f"{_HEADER_BYTES} bytes", f"{size} bytes")
    if bytes(buf[:4]) != b"GGUF":
        raise Malformed("magic", "b'GGUF'", repr(bytes(buf[:4])))
    (version,) = struct.unpack_from("<I", buf, 4)
    (swapped,) = struct.unpack_from(">I", buf, 4)
    if version in VERSIONS:
        bo = "<"
    elif swapped in VERSIONS:
        bo, version = ">", swapped
    else:
        raise Malformed("version", f"{' or '.join(map(str, VERSIONS))} (in either byte order)", str(version))
    c = _Cursor(buf, bo, 8)
    n_tensors = c.count("tensor_count", _MIN_TENSOR_BYTES, "tensors")
    n_kv = c.count("kv_count", _MIN_KV_BYTES, "key-value pairs")
    fields: dict[str, Field] = {}
    for i in range(n_kv):
        f = _field(c, i)
        if f.name in fields:
            raise Malformed(f"key {f.name!r} (at byte {f.offset})", "each key once", "a second copy")
        fields[f.name] = f
    if n_tensors * _MIN_TENSOR_BYTES > c.left():
        raise Malformed("tensor_count", f"tensors that fit the {c.left()} bytes left", str(n_tensors))
    infos = [_tensor_info(c, i) for i in range(n_tensors)]
    alignment = _alignment(fields)
    data_offset = -(-c.off // alignment) * alignment
    tensors: list[RawTensor] = []
    names: set[str] = set()
    for where, t in infos:
        if t.name in names:
            raise Malformed(where, "each tensor name once", "a second copy")
        names.add(t.name)
        tensors.append(_place(where, t, data_offset, alignment, size))
    return Layout(bo, version, alignment, data_offset, size, fields, tensors)


def _field(c: _Cursor, i: int) -> Field:
    start = c.off
    name = c.string(f"key #{i} (at byte {start})")
    where = f"key {name!r} (at byte {start})"
    value_offset = c.off
    vtype = c.vtype(where + " type")
    value: Any
    if vtype != T.ARRAY:
        value = c.string(where) if vtype == T.STRING else c.scalar(SCALAR_CODES[vtype], where)
        return Field(name, start, value_offset, c.off, (vtype,), value)
    sub = c.vtype(where + " element type")
    if sub == T.ARRAY:
        raise Malformed(where, "an array of numbers, booleans or strings", "an array of arrays")
    if sub == T.STRING:
        value = _strings(c, where)
    else:
        code = SCALAR_CODES[sub]
        item = struct.calcsize(code)
        n = c.count(where + " array count", item, f"{sub.name} values")
        value = np.frombuffer(c.buf, dtype=np.dtype(c.bo + code), count=n, offset=c.off)
        c.off += n * item
    return Field(name, start, value_offset, c.off, (T.ARRAY, sub), value)


def _strings(c: _Cursor, where: str) -> tuple[str, ...]:
    n = c.count(where + " array count", 8, "strings", MAX_STRINGS)
    buf, off, end = c.buf, c.off, c.size
    unpack = struct.Struct(c.bo + "Q").unpack_from
    out: list[str] = []
    for j in range(n):
        if off + 8 > end:
            c.off = off
            c.need(8, f"{where} entry {j} length")
        (length,) = unpack(buf, off)
        off += 8
        if length > end - off:
            raise Malformed(f"{where} entry {j} length", f"at most {end - off} bytes", str(length))
        raw = buf[off : off + length]
        try:
            out.append(str(raw, "utf-8"))
        except UnicodeDecodeError:
            _utf8(raw, f"{where} entry {j}")
        off += length
    c.off = off
    return tuple(out)


def _tensor_info(c: _Cursor, i: int) -> tuple[str, RawTensor]:
    start = c.off
    name = c.string(f"tensor #{i} (at byte {start}) name")
    where = f"tensor {name!r} (at byte {start})"
    if len(name.encode()) > MAX_NAME_BYTES:
        raise Malformed(where, f"a name of at most {MAX_NAME_BYTES} bytes", f"{len(name.encode())} bytes")
    n_dims = c.scalar("I", where + " n_dims")
    if n_dims > MAX_DIMS:
        raise Malformed(where + " n_dims", f"at most {MAX_DIMS}", str(n_dims))
    shape = tuple(int(c.scalar("Q", f"{where} ne{j}")) for j in range(n_dims))
    raw_type = c.scalar("I", where + " type")
    offset = int(c.scalar("Q", where + " offset"))
    try:
        qtype = GGMLQuantizationType(raw_type)
        block, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise Malformed(where + " type", "a ggml tensor type", str(raw_type)) from None
    n_el = 1
    for d in shape:
        n_el *= d
    if n_el > INT64_MAX:
        raise Malformed(where + " shape", "at most 2^63-1 elements", f"{list(shape)}")
    ne0 = shape[0] if shape else 1
    if ne0 % block:
        raise Malformed(where + " ne0", f"a multiple of {block} (the {qtype.name} block)", str(ne0))
    return where, RawTensor(name, qtype, shape, n_el, n_el // block * type_size, offset)


def _alignment(fields: dict[str, Field]) -> int:
    f = fields.get(ALIGNMENT.template)
    if f is None:
        return DEFAULT_ALIGNMENT
    if f.types != (T.UINT32,) or f.value == 0 or f.value & (f.value - 1):
        found = f"{f.types[-1].name.lower()} {f.value!r}" if not f.is_array else "an array"
        raise Malformed(f"key {ALIGNMENT.template!r}", "a uint32 power of two", found)
    return int(f.value)


def _place(where: str, t: RawTensor, data_offset: int, alignment: int, size: int) -> RawTensor:
    if t.offset % alignment:
        raise Malformed(where + " offset", f"a multiple of the alignment {alignment}", str(t.offset))
    start = data_offset + t.offset
    if start + t.n_bytes > size:
        raise Malformed(
            where + " data", f"{t.n_bytes} bytes from byte {start}", f"the file ends at byte {size}"
        )
    return RawTensor(t.name, t.ggml_type, t.shape, t.n_elements, t.n_bytes, start)
