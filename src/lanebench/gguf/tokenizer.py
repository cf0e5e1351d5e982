"""The vocabulary of a GGUF: copy it into another file, and compare two of them.

A head or draft must carry exactly its main model's vocabulary, so lanebench never
rebuilds one: it copies every ``tokenizer.*`` key with its GGUF type.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanebench.gguf import keys as K
from lanebench.gguf.layout import Field
from lanebench.gguf.reader import GgufFile
from lanebench.gguf.writer import KV, Packed

# tokenizer.ggml.model -> llama.cpp vocab type (src/llama-vocab.cpp)
VOCAB_TYPES = {
    "no_vocab": "none",
    "none": "none",
    "llama": "spm",
    "bert": "wpm",
    "gpt2": "bpe",
    "gemma4": "bpe",
    "t5": "ugm",
    "rwkv": "rwkv",
    "plamo2": "plamo2",
}


def kv_of(field: Field) -> KV:
    """A key as a writable value, typed as stored (arrays as lists)."""
    sub = field.types[1] if field.is_array else None
    return KV(field.name, field.contents(), field.types[0], sub)


def stored_kv(src: GgufFile, key: str) -> KV:
    """``key`` copied byte for byte (for a writer in the same byte order as ``src``)."""
    field = src.fields[key]
    return KV(key, Packed(src.packed_value(key)), field.types[0], field.types[1] if field.is_array else None)


def tokenizer_kvs(src: GgufFile) -> list[KV]:
    """Every ``tokenizer.*`` key of ``src``, typed as stored, for a little-endian writer: copied
    byte for byte from a little-endian file, decoded from a big-endian one."""
    names = [k for k in src.fields if k.startswith(K.TOKENIZER_PREFIX)]
    if src.byte_order == "<":
        return [stored_kv(src, k) for k in names]
    return [kv_of(src.fields[k]) for k in names]


@dataclass(frozen=True, slots=True)
class Vocab:
    """What llama.cpp compares between a target and its draft."""

    model: str
    vocab_type: str
    n_tokens: int
    bos: int | None
    eos: int | None
    add_bos: bool
    add_eos: bool
    hash_all: str
    hash_from_5: str


def vocab_of(g: GgufFile) -> Vocab:
    """The vocabulary facts of ``g`` (add-flags default as llama.cpp's do for the type)."""
    meta = g.meta
    model = meta.get(K.TOKENIZER_MODEL, "none")
    vtype = VOCAB_TYPES.get(model, model)
    return Vocab(
        model=model,
        vocab_type=vtype,
        n_tokens=g.n_tokens,
        bos=meta.get(K.BOS_ID),
        eos=meta.get(K.EOS_ID),
        add_bos=meta.get(K.ADD_BOS, vtype in {"spm", "wpm"}),
        add_eos=meta.get(K.ADD_EOS, vtype == "ugm"),
        hash_all=g.vocab_hash(0),
        hash_from_5=g.vocab_hash(5),
    )
