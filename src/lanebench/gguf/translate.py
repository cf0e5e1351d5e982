"""``lanebench gguf translate``: move a head between the upstream and Atomic dialects.

Metadata keys and tensor names are rewritten; tensor bytes are copied untouched (same type,
same shape, same data). A key only one dialect has is derived from the other's: upstream
``embedding_length_out`` <-> atomic ``n_embd_backbone``; ``nextn_predict_layers`` =
``block_count``; ``requires_target_arch`` = ``gemma4``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from lanebench import __version__
from lanebench.errors import BadInput
from lanebench.gguf.heads import ARCH, TARGET_ARCH, HeadFormat, dialect_keys, format_of_arch, rename_tensor
from lanebench.gguf.reader import GgufFile, open_gguf
from lanebench.gguf.tokenizer import kv_of, stored_kv
from lanebench.gguf.writer import KV, TensorPlan, boolean, refuse_existing, string, u32, write_gguf


def field_kvs(g: GgufFile) -> list[KV]:
    """Every key of ``g`` (except general.architecture), typed as stored, values decoded."""
    return [kv_of(f) for k, f in g.fields.items() if k != "general.architecture"]


def copy_plans(g: GgufFile, rename: Callable[[str], str | None]) -> list[TensorPlan]:
    """Plans that copy ``g``'s tensors byte for byte; ``rename`` returns None to drop one.

    BadInput when two tensors would end up with one name."""
    plans: dict[str, TensorPlan] = {}
    sources: dict[str, str] = {}
    for t in g.raw_tensors:
        new = rename(t.name)
        if new is None:
            continue
        if new in plans:
            raise BadInput(
                f"{g.path}: tensors {sources[new]!r} and {t.name!r} would both be named {new!r}; "
                "remove one of them"
            )
        shape = tuple(reversed(t.shape))  # numpy order
        plans[new], sources[new] = TensorPlan(new, shape, t.ggml_type, _raw(g, t.name)), t.name
    return list(plans.values())


def _raw(g: GgufFile, name: str) -> Callable[[], Iterator[np.ndarray]]:
    return lambda: iter([g.tensor_data(name)])


def translated_kvs(g: GgufFile, src: HeadFormat, dst: HeadFormat) -> list[KV]:
    """``g``'s keys under ``dst``'s arch prefix, copied byte for byte (so the output keeps
    ``g``'s byte order), with the dialect-only keys derived. BadInput when two keys would
    end up with one name."""
    a_src, a_dst = ARCH[src], ARCH[dst]
    drop = {f"{a_src}.{k}" for k in dialect_keys(src)} | {"general.architecture"}
    derived = _derived(g, src, dst)
    drop |= {kv.key for kv in derived}  # derived afresh, so a stale copy never wins
    out: dict[str, KV] = {}
    sources: dict[str, str] = {}
    for key in g.fields:
        new = a_dst + key[len(a_src) :] if key.startswith(a_src + ".") else key
        if key in drop or new in drop:
            continue
        if new in out:
            raise BadInput(
                f"{g.path}: keys {sources[new]!r} and {key!r} would both be named {new!r} "
                f"in the {dst} dialect; remove one of them"
            )
        kv = stored_kv(g, key)
        out[new], sources[new] = KV(new, kv.value, kv.vtype, kv.sub_type), key
    return [*out.values(), *derived]


def _derived(g: GgufFile, src: HeadFormat, dst: HeadFormat) -> list[KV]:
    """The keys only ``dst`` has, from ``g``'s (validated) metadata."""
    a_src, a_dst = ARCH[src], ARCH[dst]
    n_layer = int(g.arch_key("block_count", 0))
    need = "n_embd_backbone" if dst == "upstream" else "embedding_length_out"
    backbone = g.arch_key(need)
    if backbone is None:
        have = "embedding_length_out" if dst == "upstream" else "n_embd_backbone"
        raise BadInput(f"{g.path}: key {a_src}.{need} is missing; cannot derive {have}")
    note = string("lanebench.translated", f"lanebench {__version__}: {src} -> {dst}")
    if dst == "upstream":
        return [
            u32(f"{a_dst}.embedding_length_out", backbone),
            u32(f"{a_dst}.nextn_predict_layers", n_layer),
            note,
        ]
    n_kv = g.arch_key("attention.head_count_kv")
    return [
        u32(f"{a_dst}.n_centroids", 2048),
        u32(f"{a_dst}.centroid_top_k", 32),
        u32(f"{a_dst}.n_embd_backbone", backbone),
        boolean(f"{a_dst}.use_ordered_embeddings", "masked_embd_ordering" in g.tensors),
        boolean(f"{a_dst}.attention.k_eq_v", isinstance(n_kv, list) and bool(n_kv) and n_kv[-1] != n_kv[0]),
        string(f"{a_dst}.requires_target_arch", TARGET_ARCH),
        note,
    ]


def translate(head: Path, to: HeadFormat, out: Path, force: bool = False) -> tuple[HeadFormat, int]:
    """Rewrite ``head`` into dialect ``to`` at ``out``; returns (source dialect, bytes)."""
    if to not in ARCH:
        raise BadInput(f"--to {to!r} is not one of {', '.join(ARCH)}")
    refuse_existing(out, force)
    g = open_gguf(head, "HEAD")
    src = format_of_arch(g.arch)
    if src is None:
        raise BadInput(
            f"{head}: architecture {g.arch!r} is not an assistant head ({' or '.join(ARCH.values())})"
        )
    if src == to:
        raise BadInput(f"{head}: already in the {to} dialect ({g.arch!r}); nothing to translate")
    kvs = translated_kvs(g, src, to)
    plans = copy_plans(g, lambda n: rename_tensor(n, src, to))
    return src, write_gguf(out, ARCH[to], kvs, plans, big_endian=g.byte_order == ">")
