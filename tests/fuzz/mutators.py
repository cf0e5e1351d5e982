"""Mutations: byte-level for any file, structure-aware for GGUF seeds.

Byte-level: bit flips, random bytes, inserts, deletes, chunk duplication, truncation,
splicing of two seeds, integer overwrites with boundary values and NaN/inf patterns.
GGUF-aware (through ``gguf_codec``): a key's type tag, value, array count and elements,
string length and text (markup, control characters, invalid UTF-8), key renames onto keys
lanebench reads, duplicate and missing keys, tensor names (dialect collisions), dims, types
and offsets, the version and byte order, and raw overwrites of any count or length.
"""

from __future__ import annotations

import copy
import random
import struct
from collections.abc import Sequence
from typing import Any

from tests.fuzz.gguf_codec import ARRAY, STRING, Doc, Kv, TensorEntry, decode, encode

INTS = [0, 1, 2, 3, 4, 7, 8, 31, 32, 63, 64, 127, 128, 255, 256, 511, 512, 513, 4096, 65535, 65536]
INTS += [2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -1, -2, -(2**31), -(2**63)]
FLOATS = [float("nan"), float("inf"), float("-inf"), -0.0, 3.4e38, 1e-45, -1.0, 1e300]
TEXTS = [
    b"",
    b"[/]",
    b"[bold red]x[/bold red]",
    b"[link=file:///etc/passwd]x",
    b"a\\",
    b"\n",
    b"line1\nline2",
    b"\x1b[2J\x1b[31m",
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    b"A" * 300,
    b"gemma4",
    b"gemma4-assistant",
    b"gemma4_assistant",
    b"llama",
    b"gpt2",
    b"none",
    b"%s%n{0}",
]
ARCHS = [b"gemma4", b"gemma4-assistant", b"gemma4_assistant"]
SUFFIXES = [
    b"block_count", b"embedding_length", b"embedding_length_out", b"n_embd_backbone",
    b"feed_forward_length", b"attention.head_count", b"attention.head_count_kv",
    b"attention.key_length", b"attention.key_length_swa", b"attention.sliding_window",
    b"attention.sliding_window_pattern", b"nextn_predict_layers", b"requires_target_arch",
    b"rope.freq_base", b"attention.k_eq_v", b"expert_count", b"context_length",
]  # fmt: skip
GLOBAL_KEYS = [
    b"general.architecture", b"general.alignment", b"general.name", b"general.file_type",
    b"tokenizer.ggml.model", b"tokenizer.ggml.tokens", b"tokenizer.ggml.scores",
    b"tokenizer.ggml.token_type", b"tokenizer.ggml.bos_token_id", b"tokenizer.ggml.eos_token_id",
    b"tokenizer.ggml.add_bos_token", b"tokenizer.ggml.add_eos_token", b"lanebench.translated",
]  # fmt: skip
TENSOR_NAMES = [
    b"nextn.pre_projection.weight", b"mtp.pre_projection.weight", b"nextn.post_projection.weight",
    b"mtp.post_projection.weight", b"masked_embd_centroids.weight", b"mtp.centroids.weight",
    b"masked_embd_ordering", b"mtp.token_ordering.weight", b"token_embd.weight", b"rope_freqs.weight",
    b"blk.0.attn_q.weight", b"blk.9.ffn_up.weight", b"[/]", b"x" * 64, b"\xff",
]  # fmt: skip
TYPE_TAGS = [*range(14), 255, 2**31, 2**32 - 1]
TENSOR_TYPES = [0, 1, 2, 4, 6, 8, 12, 24, 26, 30, 31, 35, 39, 40, 1000, 2**32 - 1]


def mutate(rng: random.Random, seeds: Sequence[bytes], docs: Sequence[Doc | None] = ()) -> bytes:
    """One mutated input from ``seeds`` (``docs``: their decoded GGUFs, when already known)."""
    k = rng.randrange(len(seeds))
    doc = docs[k] if docs else decode(seeds[k])
    if doc is not None and rng.random() < 0.7:
        others = [d for d in docs if d is not None] if docs else [doc]
        return structured(rng, doc, seeds, others)
    data = bytearray(seeds[k])
    hot = doc.header_end if doc is not None else len(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 4, 8))):
        data = byte_op(rng, data, seeds, hot)
    return bytes(data)


def _pos(rng: random.Random, data: bytearray, hot: int) -> int:
    """An offset in ``data``, usually inside the first ``hot`` bytes (a GGUF's header)."""
    limit = hot if hot and rng.random() < 0.85 else len(data)
    return rng.randrange(max(1, min(limit, len(data))))


def pack_float(code: str, v: float) -> bytes:
    """``v`` packed as ``code``; too large for float32 becomes infinity."""
    try:
        return struct.pack(code, v)
    except OverflowError:
        return struct.pack(code, float("inf") if v > 0 else float("-inf"))


def boundary_int(rng: random.Random) -> int:
    return rng.choice(INTS) if rng.random() < 0.8 else rng.getrandbits(rng.choice((8, 16, 32, 64)))


def byte_op(rng: random.Random, data: bytearray, seeds: Sequence[bytes], hot: int) -> bytearray:
    """One byte-level mutation."""
    if not data:
        return bytearray(rng.randbytes(rng.randrange(1, 64)))
    op = rng.randrange(10)
    p = _pos(rng, data, hot)
    if op == 0:
        data[p] ^= 1 << rng.randrange(8)
    elif op == 1:
        data[p] = rng.randrange(256)
    elif op == 2:
        data[p:p] = rng.randbytes(rng.randrange(1, 17))
    elif op == 3:
        del data[p : p + rng.randrange(1, 65)]
    elif op == 4:
        n = rng.randrange(1, 129)
        data[_pos(rng, data, hot) : 0] = data[p : p + n]
    elif op == 5:
        return data[:p]
    elif op == 6:
        other = rng.choice(seeds)
        return data[:p] + other[rng.randrange(max(1, len(other))) :]
    elif op == 7:
        width, bo = rng.choice((1, 2, 4, 8)), rng.choice(("little", "big"))
        data[p : p + width] = (boundary_int(rng) & ((1 << (8 * width)) - 1)).to_bytes(width, bo)
    elif op == 8:
        code = rng.choice(("<f", ">f", "<d", ">d"))
        data[p : p + struct.calcsize(code)] = pack_float(code, rng.choice(FLOATS))
    else:
        data[p : p + 8] = b"[/]\n\x1b[/" if rng.random() < 0.5 else rng.randbytes(8)
    return data


def structured(
    rng: random.Random, seed_doc: Doc, seeds: Sequence[bytes], others: Sequence[Doc] = ()
) -> bytes:
    """Structure-aware mutations of one GGUF (some taking parts of ``others``), then maybe a
    raw integer overwrite."""
    doc = copy.deepcopy(seed_doc)
    if others and rng.random() < 0.15:
        transplant(rng, doc, rng.choice(others))
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        rng.choice(DOC_OPS)(rng, doc)
    enc = encode(doc)
    data = enc.data
    if rng.random() < 0.3 and enc.slots:
        off, width, _what = rng.choice(enc.slots)
        order = "little" if doc.byte_order == "<" else "big"
        data[off : off + width] = (boundary_int(rng) & ((1 << (8 * width)) - 1)).to_bytes(width, order)
    if rng.random() < 0.15:
        data = byte_op(rng, data, seeds, enc.header_end)
    return bytes(data)


def _arch(doc: Doc) -> bytes:
    for kv in doc.kvs:
        if kv.key == b"general.architecture" and isinstance(kv.value, bytes):
            return kv.value
    return b""


def _value_for(rng: random.Random, vtype: int) -> Any:
    if vtype == STRING:
        return rng.choice(TEXTS)
    if vtype in (6, 12):
        return rng.choice(FLOATS) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
    if vtype == 7:
        return rng.choice((0, 1, 2, 255))
    return boundary_int(rng)


def op_value(rng: random.Random, doc: Doc) -> None:
    """A key's value (or one array element) set to a boundary value of its type."""
    if not doc.kvs:
        return
    kv = rng.choice(doc.kvs)
    if kv.vtype == ARRAY and isinstance(kv.value, list) and kv.value:
        kv.value[rng.randrange(len(kv.value))] = _value_for(rng, kv.sub)
    else:
        kv.value = _value_for(rng, kv.vtype)


def op_retype(rng: random.Random, doc: Doc) -> None:
    """A key's type tag changed: scalar <-> array, another scalar type, a bad tag."""
    if not doc.kvs:
        return
    kv = rng.choice(doc.kvs)
    choice = rng.randrange(4)
    if choice == 0 and kv.vtype != ARRAY:  # scalar -> array of 0..3 entries
        kv.sub, kv.vtype = kv.vtype, ARRAY
        kv.value = [kv.value] * rng.choice((0, 1, 2, 3))
    elif choice == 1 and kv.vtype == ARRAY:  # array -> scalar or another element type
        items = kv.value if isinstance(kv.value, list) else []
        if rng.random() < 0.5:
            kv.vtype, kv.value = kv.sub, items[0] if items else _value_for(rng, kv.sub)
        else:
            kv.sub = rng.choice(TYPE_TAGS[:13])
            kv.value = [_value_for(rng, kv.sub) for _ in items[:8]]
    else:
        kv.vtype = rng.choice(TYPE_TAGS) if choice == 2 else rng.randrange(13)
        if kv.vtype == ARRAY:
            kv.sub, kv.value = rng.choice(TYPE_TAGS), []
        else:
            kv.value = _value_for(rng, kv.vtype)


def op_array(rng: random.Random, doc: Doc) -> None:
    """An array made empty, one entry long, shorter, longer, or an array of arrays."""
    arrays = [kv for kv in doc.kvs if kv.vtype == ARRAY and isinstance(kv.value, list)]
    if not arrays:
        return
    kv = rng.choice(arrays)
    choice = rng.randrange(5)
    if choice == 0:
        kv.value = []
    elif choice == 1:
        kv.value = kv.value[:1]
    elif choice == 2 and kv.value:
        del kv.value[rng.randrange(len(kv.value))]
    elif choice == 3:
        kv.value = kv.value + kv.value[: rng.randrange(1, 4)]
    else:
        kv.sub = ARRAY


def op_key(rng: random.Random, doc: Doc) -> None:
    """A key renamed, duplicated, deleted, or a new key added under a name lanebench reads."""
    arch = _arch(doc) or rng.choice(ARCHS)
    name = (
        rng.choice(GLOBAL_KEYS)
        if rng.random() < 0.3
        else rng.choice([arch, *ARCHS]) + b"." + rng.choice(SUFFIXES)
    )
    choice = rng.randrange(4)
    if choice == 0 and doc.kvs:
        rng.choice(doc.kvs).key = name
    elif choice == 1 and doc.kvs:
        doc.kvs.insert(rng.randrange(len(doc.kvs) + 1), copy.deepcopy(rng.choice(doc.kvs)))
    elif choice == 2 and doc.kvs:
        del doc.kvs[rng.randrange(len(doc.kvs))]
    else:
        vtype = rng.choice((4, 4, 5, 10, 6, 7, 8, ARRAY))
        value: Any = _value_for(rng, vtype) if vtype != ARRAY else [rng.choice((0, 1)) for _ in range(2)]
        doc.kvs.append(Kv(name, vtype, value, 7 if vtype == ARRAY else 0))


def op_tensor(rng: random.Random, doc: Doc) -> None:
    """A tensor renamed (dialect collisions), its dims, type or offset changed, or it is
    duplicated or dropped."""
    if not doc.tensors:
        return
    t = rng.choice(doc.tensors)
    choice = rng.randrange(7)
    if choice == 0:
        other = rng.choice(doc.tensors).name
        t.name = rng.choice((other, rng.choice(TENSOR_NAMES)))
    elif choice == 1 and t.dims:
        i = rng.randrange(len(t.dims))
        t.dims[i] = rng.choice((0, 1, t.dims[i] * 2, t.dims[i] + 1, boundary_int(rng)))
    elif choice == 2:
        t.dims = t.dims + [1] * rng.randrange(1, 4) if rng.random() < 0.5 else t.dims[:-1]
    elif choice == 3:
        t.ttype = rng.choice(TENSOR_TYPES)
    elif choice == 4:
        t.offset = rng.choice((t.offset + 1, t.offset + doc.alignment, boundary_int(rng)))
    elif choice == 5:
        doc.tensors.append(TensorEntry(t.name, list(t.dims), t.ttype, t.offset))
    else:
        doc.tensors.remove(t)


def op_header(rng: random.Random, doc: Doc) -> None:
    """The version, the byte order (a valid file the other way round) or the alignment."""
    choice = rng.randrange(3)
    if choice == 0:
        doc.version = rng.choice((0, 1, 2, 3, 4, 0x03000000, boundary_int(rng)))
    elif choice == 1:
        doc.byte_order = ">" if doc.byte_order == "<" else "<"
    else:
        value = rng.choice((0, 1, 3, 8, 64, 4096, 2**31))
        doc.kvs = [kv for kv in doc.kvs if kv.key != b"general.alignment"]
        doc.kvs.append(Kv(b"general.alignment", rng.choice((4, 4, 10, 5)), value))
        if rng.random() < 0.5 and 0 < value <= 4096 and not value & (value - 1):
            doc.alignment = value


def op_string(rng: random.Random, doc: Doc) -> None:
    """A string (a value, an array entry, a key or a tensor name) set to hostile text."""
    strings = [kv for kv in doc.kvs if kv.vtype == STRING]
    arrays = [kv for kv in doc.kvs if kv.vtype == ARRAY and kv.sub == STRING and kv.value]
    text = rng.choice(TEXTS)
    choice = rng.randrange(4)
    if choice == 0 and strings:
        rng.choice(strings).value = text
    elif choice == 1 and arrays:
        kv = rng.choice(arrays)
        kv.value[rng.randrange(len(kv.value))] = text
    elif choice == 2 and doc.kvs:
        kv = rng.choice(doc.kvs)
        kv.key = kv.key + text if rng.random() < 0.5 else text
    elif doc.tensors:
        rng.choice(doc.tensors).name = text


def transplant(rng: random.Random, doc: Doc, other: Doc) -> None:
    """Keys or tensors of another seed: one key, one tensor, or all keys (another file's
    metadata over this file's tensors)."""
    choice = rng.randrange(3)
    if choice == 0 and other.kvs:
        doc.kvs.insert(rng.randrange(len(doc.kvs) + 1), copy.deepcopy(rng.choice(other.kvs)))
    elif choice == 1 and other.tensors:
        t = rng.choice(other.tensors)
        doc.tensors.append(TensorEntry(t.name, list(t.dims), t.ttype, t.offset))
    else:
        doc.kvs = copy.deepcopy(other.kvs)


DOC_OPS = [op_value, op_retype, op_array, op_key, op_tensor, op_header, op_string, op_value, op_key]
