"""``lanebench gguf translate``: move a head from one registered dialect to another.

Metadata keys and tensor names are rewritten; tensor bytes are copied untouched (same type,
same shape, same data). The source dialect's own keys are dropped and the target's derived
from the head (``HeadDialect.own_kvs``): upstream ``embedding_length_out`` <-> atomic
``n_embd_backbone``; ``nextn_predict_layers`` = ``block_count``; ``requires_target_arch`` =
``gemma4``. The file written is checked with the rules ``inspect`` and ``check`` apply to a head
alone before it takes the output's name; a head that would fail them is refused, not written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from lanebench import __version__
from lanebench.errors import BadInput
from lanebench.gguf import heads
from lanebench.gguf import keys as K
from lanebench.gguf.check import written_head_problems
from lanebench.gguf.heads import HeadDialect
from lanebench.gguf.reader import GgufFile, open_gguf
from lanebench.gguf.tokenizer import kv_of, stored_kv
from lanebench.gguf.writer import KV, TensorPlan, refuse_existing, string, write_gguf

TRANSLATED = "lanebench.translated"  # lanebench's own key: what translated the file


def field_kvs(g: GgufFile) -> list[KV]:
    """Every key of ``g`` (except the architecture), typed as stored, values decoded."""
    return [kv_of(f) for k, f in g.fields.items() if k != K.ARCHITECTURE.template]


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


def translated_kvs(g: GgufFile, src: HeadDialect, dst: HeadDialect) -> list[KV]:
    """``g``'s keys under ``dst``'s arch prefix, copied byte for byte (so the output keeps
    ``g``'s byte order), with ``dst``'s own keys derived. BadInput when two keys would end up
    with one name, or when ``g`` lacks what the derivation needs."""
    drop = {g.meta.name(k) for k in src.own_keys} | {K.ARCHITECTURE.template}
    derived = [
        *dst.own_kvs(_params(g, src)),
        string(TRANSLATED, f"lanebench {__version__}: {src.name} -> {dst.name}"),
    ]
    drop |= {kv.key for kv in derived}  # derived afresh, so a stale copy never wins
    out: dict[str, KV] = {}
    sources: dict[str, str] = {}
    for key in g.fields:
        new = dst.arch + key[len(src.arch) :] if key.startswith(src.arch + ".") else key
        if key in drop or new in drop:
            continue
        if new in out:
            raise BadInput(
                f"{g.path}: keys {sources[new]!r} and {key!r} would both be named {new!r} "
                f"in the {dst.name} dialect; remove one of them"
            )
        kv = stored_kv(g, key)
        out[new], sources[new] = KV(new, kv.value, kv.vtype, kv.sub_type), key
    return [*out.values(), *derived]


def _params(g: GgufFile, src: HeadDialect) -> heads.HeadParams:
    """The head's parameters as its own keys give them, and the facts only its file shows."""
    hp, missing = src.params(g.meta)
    if hp is None:
        raise BadInput(f"{g.path}: {missing[0]}; cannot translate it")
    kv = hp.kv_heads
    return replace(
        hp,
        use_ordered_embeddings=any(src.upstream_name(n) == "masked_embd_ordering" for n in g.tensors),
        k_eq_v=bool(kv) and kv[-1] != kv[0],
    )


def translate(head: Path, to: str, out: Path, force: bool = False) -> tuple[str, int]:
    """Rewrite ``head`` into dialect ``to`` at ``out``; returns (source dialect, bytes)."""
    dst = heads.dialect(to, "--to")
    refuse_existing(out, force)
    g = open_gguf(head, "HEAD")
    src = heads.of_arch(g.arch)
    if src is None:
        raise BadInput(f"{head}: architecture {g.arch!r} is not an assistant head ({heads.archs()})")
    if src is dst:
        raise BadInput(f"{head}: already in the {to} dialect ({g.arch!r}); nothing to translate")
    kvs = translated_kvs(g, src, dst)
    plans = copy_plans(g, lambda n: dst.tensor_name(src.upstream_name(n)))
    size = write_gguf(out, dst.arch, kvs, plans, big_endian=g.byte_order == ">", check=written_head_problems)
    return src.name, size
