"""The vocabulary of a GGUF: copy it into another file, and compare two of them.

A head or draft must carry exactly its main model's vocabulary, so lanebench never
rebuilds one: it copies every ``tokenizer.*`` key with its GGUF type.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    keys = [k for k in src.fields if k.startswith("tokenizer.")]
    if src.byte_order == "<":
        return [stored_kv(src, k) for k in keys]
    return [kv_of(src.fields[k]) for k in keys]


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
    model = str(g.get("tokenizer.ggml.model", "none"))
    vtype = VOCAB_TYPES.get(model, model)
    n = g.count("tokenizer.ggml.tokens")
    return Vocab(
        model=model,
        vocab_type=vtype,
        n_tokens=n,
        bos=_opt_int(g.get("tokenizer.ggml.bos_token_id")),
        eos=_opt_int(g.get("tokenizer.ggml.eos_token_id")),
        add_bos=bool(g.get("tokenizer.ggml.add_bos_token", vtype in {"spm", "wpm"})),
        add_eos=bool(g.get("tokenizer.ggml.add_eos_token", vtype == "ugm")),
        hash_all=g.vocab_hash(0),
        hash_from_5=g.vocab_hash(5),
    )


def _opt_int(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) else None
