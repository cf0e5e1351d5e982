"""A permissive GGUF codec for the fuzzer: decode a valid seed into editable parts, encode
any parts back (values out of range are masked to their width, strings may be any bytes).

It is deliberately independent of ``lanebench.gguf`` so that the fuzzer does not share the
reader's assumptions. ``encode`` also returns the byte offset and width of every count,
length, type tag and dimension it wrote, for raw integer overwrites.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

ARRAY, STRING, BOOL = 9, 8, 7
FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}


@dataclass(slots=True)
class Kv:
    key: bytes
    vtype: int
    value: Any  # scalar (int/float), bytes (string), or list (array)
    sub: int = 0  # array element type


@dataclass(slots=True)
class TensorEntry:
    name: bytes
    dims: list[int]
    ttype: int
    offset: int


@dataclass(slots=True)
class Doc:
    byte_order: str
    version: int
    kvs: list[Kv]
    tensors: list[TensorEntry]
    data: bytes  # the data section (from the aligned end of the header)
    alignment: int = 32
    header_end: int = 0


@dataclass(slots=True)
class Encoded:
    data: bytearray
    slots: list[tuple[int, int, str]] = field(default_factory=list)  # offset, width, what
    header_end: int = 0


class _Rd:
    def __init__(self, buf: bytes, bo: str, off: int) -> None:
        self.buf, self.bo, self.off = buf, bo, off

    def num(self, code: str) -> Any:
        (v,) = struct.unpack_from(self.bo + code, self.buf, self.off)
        self.off += struct.calcsize(code)
        return v

    def bytes_(self) -> bytes:
        n = self.num("Q")
        out = self.buf[self.off : self.off + n]
        self.off += n
        return bytes(out)

    def value(self, vtype: int) -> Any:
        if vtype == STRING:
            return self.bytes_()
        return self.num(FMT[vtype])


def decode(buf: bytes) -> Doc | None:
    """The parts of a valid GGUF (None when ``buf`` is not one this codec can read)."""
    try:
        return _decode(buf)
    except (struct.error, KeyError, IndexError, ValueError):
        return None


def _decode(buf: bytes) -> Doc | None:
    if buf[:4] != b"GGUF":
        return None
    (v,) = struct.unpack_from("<I", buf, 4)
    bo = "<" if v in (1, 2, 3) else ">"
    r = _Rd(buf, bo, 4)
    version = r.num("I")
    n_t, n_kv = r.num("Q"), r.num("Q")
    kvs: list[Kv] = []
    for _ in range(n_kv):
        key, vtype = r.bytes_(), r.num("I")
        if vtype == ARRAY:
            sub, n = r.num("I"), r.num("Q")
            kvs.append(Kv(key, vtype, [r.value(sub) for _ in range(n)], sub))
        else:
            kvs.append(Kv(key, vtype, r.value(vtype)))
    tensors = []
    for _ in range(n_t):
        name, nd = r.bytes_(), r.num("I")
        dims = [r.num("Q") for _ in range(nd)]
        tensors.append(TensorEntry(name, dims, r.num("I"), r.num("Q")))
    align = next((int(kv.value) for kv in kvs if kv.key == b"general.alignment"), 32) or 32
    start = -(-r.off // align) * align
    return Doc(bo, version, kvs, tensors, bytes(buf[start:]), align, r.off)


class _Wr:
    def __init__(self, bo: str) -> None:
        self.bo, self.out, self.slots = bo, bytearray(), []  # type: ignore[var-annotated]

    def num(self, code: str, v: Any, what: str = "") -> None:
        if code in "fd":
            try:
                packed = struct.pack(self.bo + code, float(v))
            except OverflowError:
                packed = struct.pack(self.bo + code, float("inf"))
        else:
            width = struct.calcsize(code)
            packed = (int(v) & ((1 << (8 * width)) - 1)).to_bytes(
                width, "little" if self.bo == "<" else "big"
            )
        if what:
            self.slots.append((len(self.out), len(packed), what))
        self.out += packed

    def bytes_(self, b: bytes, what: str) -> None:
        self.num("Q", len(b), what + " length")
        self.out += b

    def value(self, vtype: int, v: Any, what: str) -> None:
        if vtype == STRING:
            self.bytes_(v if isinstance(v, bytes) else str(v).encode(), what)
        elif vtype in FMT:
            self.num(FMT[vtype], v if not isinstance(v, bytes) else len(v), what + " value")


def encode(doc: Doc) -> Encoded:
    """The bytes of ``doc``: header, key-values, tensor infos, padding, data section."""
    w = _Wr(doc.byte_order)
    w.out += b"GGUF"
    w.num("I", doc.version, "version")
    w.num("Q", len(doc.tensors), "tensor_count")
    w.num("Q", len(doc.kvs), "kv_count")
    for kv in doc.kvs:
        w.bytes_(kv.key, "key")
        w.num("I", kv.vtype, "value type")
        if kv.vtype == ARRAY:
            w.num("I", kv.sub, "element type")
            items = kv.value if isinstance(kv.value, list) else [kv.value]
            w.num("Q", len(items), "array count")
            for item in items:
                w.value(kv.sub, item, "element")
        else:
            w.value(kv.vtype, kv.value, "scalar")
    for t in doc.tensors:
        w.bytes_(t.name, "tensor name")
        w.num("I", len(t.dims), "n_dims")
        for d in t.dims:
            w.num("Q", d, "dim")
        w.num("I", t.ttype, "tensor type")
        w.num("Q", t.offset, "tensor offset")
    header_end = len(w.out)
    align = max(1, doc.alignment)
    w.out += b"\0" * (-len(w.out) % align)
    w.out += doc.data
    return Encoded(w.out, w.slots, header_end)
