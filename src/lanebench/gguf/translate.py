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
from gguf import GGMLQuantizationType, GGUFValueType

from lanebench import __version__
from lanebench.errors import BadInput
from lanebench.gguf.heads import ARCH, TARGET_ARCH, HeadDialect, dialect_keys, dialect_of_arch, rename_tensor
from lanebench.gguf.reader import GgufFile, _array_contents, open_gguf
from lanebench.gguf.writer import KV, TensorPlan, boolean, refuse_existing, string, u32, write_gguf


def field_kvs(g: GgufFile) -> list[KV]:
    """Every key of ``g`` (except GGUF.* and general.architecture), typed as stored."""
    out: list[KV] = []
    for key, field in g.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            out.append(KV(key, _array_contents(field), vtype, field.types[-1]))
        else:
            out.append(KV(key, field.contents(), vtype))
    return out


def copy_plans(g: GgufFile, rename: Callable[[str], str | None]) -> list[TensorPlan]:
    """Plans that copy ``g``'s tensors byte for byte; ``rename`` returns None to drop one."""
    plans: list[TensorPlan] = []
    for t in g.reader.tensors:
        new = rename(t.name)
        if new is None:
            continue
        qtype = GGMLQuantizationType(t.tensor_type)
        shape = tuple(int(d) for d in reversed(t.shape))  # numpy order
        plans.append(TensorPlan(new, shape, qtype, _raw(g, t.name)))
    return plans


def _raw(g: GgufFile, name: str) -> Callable[[], Iterator[np.ndarray]]:
    return lambda: iter([g.tensor_data(name)])


def translated_kvs(g: GgufFile, src: HeadDialect, dst: HeadDialect) -> list[KV]:
    """``g``'s keys under ``dst``'s arch prefix, with the dialect-only keys derived."""
    a_src, a_dst = ARCH[src], ARCH[dst]
    drop = {f"{a_src}.{k}" for k in dialect_keys(src)}
    out: list[KV] = []
    for kv in field_kvs(g):
        if kv.key in drop:
            continue
        key = a_dst + kv.key[len(a_src) :] if kv.key.startswith(a_src + ".") else kv.key
        out.append(KV(key, kv.value, kv.vtype, kv.sub_type))
    n_layer = int(g.arch_key("block_count", 0))
    if dst == "upstream":
        backbone = g.arch_key("n_embd_backbone")
        if backbone is None:
            raise BadInput(
                f"{g.path}: key {a_src}.n_embd_backbone is missing; cannot derive embedding_length_out"
            )
        out += [u32(f"{a_dst}.embedding_length_out", backbone), u32(f"{a_dst}.nextn_predict_layers", n_layer)]
    else:
        backbone = g.arch_key("embedding_length_out")
        if backbone is None:
            raise BadInput(
                f"{g.path}: key {a_src}.embedding_length_out is missing; cannot derive n_embd_backbone"
            )
        n_kv = g.arch_key("attention.head_count_kv")
        out += [
            u32(f"{a_dst}.n_centroids", 2048),
            u32(f"{a_dst}.centroid_top_k", 32),
            u32(f"{a_dst}.n_embd_backbone", backbone),
            boolean(f"{a_dst}.use_ordered_embeddings", "masked_embd_ordering" in g.tensors),
            boolean(f"{a_dst}.attention.k_eq_v", isinstance(n_kv, list) and n_kv[-1] != n_kv[0]),
            string(f"{a_dst}.requires_target_arch", TARGET_ARCH),
        ]
    out.append(string("lanebench.translated", f"lanebench {__version__}: {src} -> {dst}"))
    return out


def translate(head: Path, to: HeadDialect, out: Path, force: bool = False) -> tuple[HeadDialect, int]:
    """Rewrite ``head`` into dialect ``to`` at ``out``; returns (source dialect, bytes)."""
    if to not in ARCH:
        raise BadInput(f"--to {to!r} is not one of {', '.join(ARCH)}")
    refuse_existing(out, force)
    g = open_gguf(head, "HEAD")
    src = dialect_of_arch(g.arch)
    if src is None:
        raise BadInput(
            f"{head}: architecture {g.arch!r} is not an assistant head ({' or '.join(ARCH.values())})"
        )
    if src == to:
        raise BadInput(f"{head}: already in the {to} dialect ({g.arch!r}); nothing to translate")
    kvs = translated_kvs(g, src, to)
    plans = copy_plans(g, lambda n: rename_tensor(n, src, to))
    return src, write_gguf(out, ARCH[to], kvs, plans)
