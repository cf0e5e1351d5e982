"""What every Gemma 4 assistant (MTP) head dialect shares, and the registry of dialects.

A *head dialect* is one way of writing the same head into GGUF: the architecture name its
loader knows, the names of its tensors, the keys only it has, and the rules its loader applies
to a head and its target. Each is one subclass of :class:`HeadDialect` in its own module;
defining the class registers it (as llama.cpp's ``convert_hf_to_gguf.py`` registers its
``ModelBase`` subclasses). A second class with a registered name or architecture is an error;
a failed lookup lists what exists. Tensor names are given in upstream's naming and renamed by
each dialect. Everything here is pure: it builds and reads metadata, it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from gguf import GGUFValueType

from lanebench.errors import BadInput
from lanebench.gguf import keys as K
from lanebench.gguf.keys import Key
from lanebench.gguf.meta import Meta
from lanebench.gguf.writer import KV, array, f32, u32

TARGET_ARCH = "gemma4"
CENTROIDS = ("masked_embd_centroids.weight", "masked_embd_ordering")  # optional, upstream names


@dataclass(frozen=True, slots=True)
class HeadParams:
    """Hyper-parameters of a head, dialect-neutral. Widths in elements."""

    hidden: int
    backbone: int
    is_swa: tuple[bool, ...]
    n_head: int
    kv_heads: tuple[int, ...]
    head_dim_full: int
    head_dim_swa: int
    ffn: tuple[int, ...]
    sliding_window: int
    rope_base: float
    rope_base_swa: float
    rope_dim_full: int
    rope_dim_swa: int
    rms_eps: float
    context: int
    n_centroids: int = 2048
    centroid_top_k: int = 32
    use_ordered_embeddings: bool = False
    k_eq_v: bool = True
    softcap: float | None = None

    @property
    def n_layer(self) -> int:
        return len(self.is_swa)

    def head_dim(self, il: int) -> int:
        return self.head_dim_swa if self.is_swa[il] else self.head_dim_full


class HeadDialect:
    """One GGUF dialect of an assistant head. A subclass that sets ``name`` is registered."""

    name: ClassVar[str]  # what --to and --dialect take
    arch: ClassVar[str]  # general.architecture of its heads
    backbone: ClassVar[Key[int]]  # the key that holds the backbone width (the target's n_embd)
    own_keys: ClassVar[tuple[Key[Any], ...]] = ()  # keys only this dialect writes
    server: ClassVar[str | None] = None  # speculative-flag dialect of the builds that load it
    target_arch: ClassVar[str] = TARGET_ARCH  # the main models it drafts for
    renames: ClassVar[Mapping[str, str]] = MappingProxyType({})  # upstream tensor name -> its own
    convert_skips: ClassVar[Mapping[str, str]] = MappingProxyType({})  # upstream name -> why left out

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _register(cls())

    # ---- metadata ------------------------------------------------------------------------

    def own_kvs(self, hp: HeadParams) -> list[KV]:
        """The keys only this dialect has, for a head of ``hp``."""
        raise NotImplementedError

    def kvs(self, hp: HeadParams) -> list[KV]:
        """Architecture metadata of a head (no general.* or tokenizer.* keys)."""
        return [*common_kvs(hp, self.arch), *self.own_kvs(hp)]

    def params(self, head: Meta) -> tuple[HeadParams | None, list[str]]:
        """HeadParams from a head's metadata, or one line per missing required key."""
        required = (
            K.EMBEDDING_LENGTH, K.BLOCK_COUNT, K.FEED_FORWARD_LENGTH, K.HEAD_COUNT, K.KEY_LENGTH,
            K.SLIDING_WINDOW_PATTERN, self.backbone,
        )  # fmt: skip
        missing = [f"metadata: expected key {head.name(k)}, found none" for k in required if not head.has(k)]
        if missing:
            return None, missing
        n = head.get(K.BLOCK_COUNT, 0)
        is_swa = head.get(K.SLIDING_WINDOW_PATTERN)
        if not isinstance(is_swa, tuple):
            return None, [
                f"sliding_window_pattern: expected {n} booleans (one per block_count layer), found {is_swa!r}"
            ]
        counts = head.get(K.HEAD_COUNT, ())
        if len(set(counts)) > 1:
            return None, [f"attention.head_count: expected one count for every layer, found {list(counts)}"]
        n_head = counts[0] if counts else 0
        hd_full = head.get(K.KEY_LENGTH, 0)
        return HeadParams(
            hidden=head.get(K.EMBEDDING_LENGTH, 0),
            backbone=head.get(self.backbone, 0),
            is_swa=is_swa,
            n_head=n_head,
            kv_heads=head.get(K.HEAD_COUNT_KV, (n_head,) * n),
            head_dim_full=hd_full,
            head_dim_swa=head.get(K.KEY_LENGTH_SWA, hd_full),
            ffn=head.get(K.FEED_FORWARD_LENGTH, ()),
            sliding_window=head.get(K.SLIDING_WINDOW, 0),
            **_UNREAD,
        ), []

    # ---- tensors -------------------------------------------------------------------------

    def tensor_name(self, upstream_name: str) -> str:
        """The name a tensor carries in this dialect, given its upstream name."""
        return self.renames.get(upstream_name, upstream_name)

    def upstream_name(self, name: str) -> str:
        """The upstream name of one of this dialect's tensors."""
        return next((up for up, own in self.renames.items() if own == name), name)

    def expected_tensors(self, hp: HeadParams, n_vocab: int) -> dict[str, tuple[int, ...]]:
        """Tensors the loader requires, by name, with llama.cpp-order shapes (``ne0`` first)."""
        return {self.tensor_name(k): v for k, v in upstream_tensors(hp, n_vocab).items()}

    def optional_tensors(self) -> set[str]:
        """Tensors a loader accepts but does not need (the centroid masked embedding)."""
        return {self.tensor_name(n) for n in CENTROIDS}

    # ---- check rules ---------------------------------------------------------------------

    def rules(self, head: Meta, hp: HeadParams, main: Meta | None = None) -> list[str]:
        """What this dialect's loader demands of the head's metadata beyond its presence, and,
        given ``main``, of the pair (here: backbone width = the target's embedding_length)."""
        if main is None:
            return []
        n_embd = main.get(K.EMBEDDING_LENGTH)
        if hp.backbone != n_embd:
            return [
                f"backbone width: expected {n_embd} (main embedding_length), found {hp.backbone} "
                f"({head.name(self.backbone)})"
            ]
        return []


_UNREAD: dict[str, Any] = dict(  # HeadParams fields no rule reads back from a file
    rope_base=0.0, rope_base_swa=0.0, rope_dim_full=0, rope_dim_swa=0, rms_eps=0.0, context=0
)


def common_kvs(hp: HeadParams, arch: str) -> list[KV]:
    """The keys every dialect writes alike, under ``arch``."""
    kvs = [
        u32(K.CONTEXT_LENGTH.name(arch), hp.context),
        u32(K.EMBEDDING_LENGTH.name(arch), hp.hidden),
        u32(K.BLOCK_COUNT.name(arch), hp.n_layer),
        _u32_or_array(K.FEED_FORWARD_LENGTH.name(arch), hp.ffn),
        u32(K.HEAD_COUNT.name(arch), hp.n_head),
        array(K.HEAD_COUNT_KV.name(arch), hp.kv_heads, GGUFValueType.UINT32),
        f32(K.ROPE_FREQ_BASE.name(arch), hp.rope_base),
        f32(K.ROPE_FREQ_BASE_SWA.name(arch), hp.rope_base_swa),
        f32(K.RMS_EPS.name(arch), hp.rms_eps),
        u32(K.KEY_LENGTH.name(arch), hp.head_dim_full),
        u32(K.VALUE_LENGTH.name(arch), hp.head_dim_full),
        u32(K.KEY_LENGTH_SWA.name(arch), hp.head_dim_swa),
        u32(K.VALUE_LENGTH_SWA.name(arch), hp.head_dim_swa),
        u32(K.SLIDING_WINDOW.name(arch), hp.sliding_window),
        u32(K.SHARED_KV_LAYERS.name(arch), hp.n_layer),
        u32(K.EMBEDDING_LENGTH_PER_LAYER_INPUT.name(arch), 0),
        array(K.SLIDING_WINDOW_PATTERN.name(arch), hp.is_swa, GGUFValueType.BOOL),
        u32(K.ROPE_DIMENSION_COUNT.name(arch), hp.rope_dim_full),
        u32(K.ROPE_DIMENSION_COUNT_SWA.name(arch), hp.rope_dim_swa),
    ]
    if hp.softcap:
        kvs.append(f32(K.FINAL_LOGIT_SOFTCAPPING.name(arch), hp.softcap))
    return kvs


def _u32_or_array(key: str, values: tuple[int, ...]) -> KV:
    if len(set(values)) == 1:
        return u32(key, values[0])
    return array(key, values, GGUFValueType.UINT32)


def upstream_tensors(hp: HeadParams, n_vocab: int) -> dict[str, tuple[int, ...]]:
    """Required tensors in upstream's names, llama.cpp-order shapes (``ne0`` first)."""
    h, bb = hp.hidden, hp.backbone
    out: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (h, n_vocab),
        "output_norm.weight": (h,),
        "nextn.pre_projection.weight": (2 * bb, h),
        "nextn.post_projection.weight": (h, bb),
    }
    if not all(hp.is_swa):
        out["rope_freqs.weight"] = (hp.head_dim_full // 2,)
    for il in range(hp.n_layer):
        hd, ff = hp.head_dim(il), hp.ffn[il]
        b = f"blk.{il}."
        out.update(
            {
                b + "attn_norm.weight": (h,),
                b + "attn_q.weight": (h, hd * hp.n_head),
                b + "attn_output.weight": (hd * hp.n_head, h),
                b + "attn_q_norm.weight": (hd,),
                b + "post_attention_norm.weight": (h,),
                b + "layer_output_scale.weight": (1,),
                b + "ffn_norm.weight": (h,),
                b + "ffn_gate.weight": (h, ff),
                b + "ffn_up.weight": (h, ff),
                b + "ffn_down.weight": (ff, h),
                b + "post_ffw_norm.weight": (h,),
            }
        )
    return out


# ---- the registry ----------------------------------------------------------------------

_REGISTRY: dict[str, HeadDialect] = {}
_COMMON = frozenset(K.known())  # keys.py's own: never forgotten


def _register(d: HeadDialect) -> None:
    clash = _REGISTRY.get(d.name) or next((o for o in _REGISTRY.values() if o.arch == d.arch), None)
    if clash is not None:
        raise ValueError(
            f"head dialect {type(d).__name__} ({d.name!r}, arch {d.arch!r}) clashes with "
            f"{type(clash).__name__} ({clash.name!r}, arch {clash.arch!r})"
        )
    K.register(d.backbone, *d.own_keys)
    _REGISTRY[d.name] = d


def unregister(name: str) -> None:
    """Forget a dialect (a test's toy one) and the keys no other dialect owns."""
    gone = _REGISTRY.pop(name, None)
    if gone is not None:
        kept = {k for d in _REGISTRY.values() for k in (d.backbone, *d.own_keys)}
        K.forget(*(k for k in (gone.backbone, *gone.own_keys) if k not in kept and k not in _COMMON))


def names() -> tuple[str, ...]:
    """Every registered dialect's name, in registration order."""
    return tuple(_REGISTRY)


def archs() -> str:
    """The registered head architectures, for messages: ``a or b``."""
    return " or ".join(d.arch for d in _REGISTRY.values())


def dialect(name: str, what: str = "dialect") -> HeadDialect:
    """The dialect called ``name``; BadInput listing the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BadInput(f"{what} {name!r} is not one of {', '.join(_REGISTRY)}") from None


def of_arch(arch: str) -> HeadDialect | None:
    """The dialect whose heads carry architecture ``arch`` (None: not a head)."""
    return next((d for d in _REGISTRY.values() if d.arch == arch), None)


def for_server(speculative: str) -> HeadDialect | None:
    """The dialect that builds speaking ``speculative`` flags load (None: none known)."""
    return next((d for d in _REGISTRY.values() if d.server == speculative), None)
