"""Gemma 4 assistant (MTP) heads in GGUF: the two dialects, their keys and their tensors.

*upstream* (llama.cpp ``src/models/gemma4-assistant.cpp``): arch ``gemma4-assistant``,
``embedding_length_out`` = backbone width, ``nextn_predict_layers`` = ``block_count``,
tensors ``nextn.pre_projection`` / ``nextn.post_projection``.
*atomic* (the older Atomic fork): arch ``gemma4_assistant``, ``n_embd_backbone``,
``requires_target_arch``, centroid keys, ``attention.k_eq_v``; tensors ``mtp.*``.
Everything here is pure: it builds and reads metadata, it does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gguf import GGUFValueType

from lanebench.gguf.writer import KV, array, boolean, f32, string, u32

HeadFormat = Literal["upstream", "atomic"]
HEAD_DIALECTS: tuple[HeadFormat, ...] = ("upstream", "atomic")
ARCH: dict[HeadFormat, str] = {"upstream": "gemma4-assistant", "atomic": "gemma4_assistant"}
TARGET_ARCH = "gemma4"

# upstream name -> atomic name; everything else is named alike in both dialects
_TO_ATOMIC = {
    "nextn.pre_projection.weight": "mtp.pre_projection.weight",
    "nextn.post_projection.weight": "mtp.post_projection.weight",
    "masked_embd_centroids.weight": "mtp.centroids.weight",
    "masked_embd_ordering": "mtp.token_ordering.weight",
}
_TO_UPSTREAM = {v: k for k, v in _TO_ATOMIC.items()}


def format_of_arch(arch: str) -> HeadFormat | None:
    """Which head dialect an architecture string belongs to (None: not a head)."""
    for d, a in ARCH.items():
        if a == arch:
            return d
    return None


def tensor_name(upstream_name: str, dialect: HeadFormat) -> str:
    """The name a tensor carries in ``dialect``, given its upstream name."""
    return _TO_ATOMIC.get(upstream_name, upstream_name) if dialect == "atomic" else upstream_name


def rename_tensor(name: str, src: HeadFormat, dst: HeadFormat) -> str:
    """Rename a tensor from one dialect to the other (unchanged when src == dst)."""
    upstream = _TO_UPSTREAM.get(name, name) if src == "atomic" else name
    return tensor_name(upstream, dst)


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


def head_kvs(hp: HeadParams, dialect: HeadFormat) -> list[KV]:
    """Architecture metadata of a head in ``dialect`` (no general.* or tokenizer.* keys)."""
    a = ARCH[dialect]
    kvs = [
        u32(f"{a}.context_length", hp.context),
        u32(f"{a}.embedding_length", hp.hidden),
        u32(f"{a}.block_count", hp.n_layer),
        _u32_or_array(f"{a}.feed_forward_length", hp.ffn),
        u32(f"{a}.attention.head_count", hp.n_head),
        array(f"{a}.attention.head_count_kv", hp.kv_heads, GGUFValueType.UINT32),
        f32(f"{a}.rope.freq_base", hp.rope_base),
        f32(f"{a}.rope.freq_base_swa", hp.rope_base_swa),
        f32(f"{a}.attention.layer_norm_rms_epsilon", hp.rms_eps),
        u32(f"{a}.attention.key_length", hp.head_dim_full),
        u32(f"{a}.attention.value_length", hp.head_dim_full),
        u32(f"{a}.attention.key_length_swa", hp.head_dim_swa),
        u32(f"{a}.attention.value_length_swa", hp.head_dim_swa),
        u32(f"{a}.attention.sliding_window", hp.sliding_window),
        u32(f"{a}.attention.shared_kv_layers", hp.n_layer),
        u32(f"{a}.embedding_length_per_layer_input", 0),
        array(f"{a}.attention.sliding_window_pattern", hp.is_swa, GGUFValueType.BOOL),
        u32(f"{a}.rope.dimension_count", hp.rope_dim_full),
        u32(f"{a}.rope.dimension_count_swa", hp.rope_dim_swa),
    ]
    if hp.softcap:
        kvs.append(f32(f"{a}.final_logit_softcapping", hp.softcap))
    if dialect == "upstream":
        kvs += [
            u32(f"{a}.embedding_length_out", hp.backbone),
            u32(f"{a}.nextn_predict_layers", hp.n_layer),
        ]
    else:
        kvs += [
            u32(f"{a}.n_centroids", hp.n_centroids),
            u32(f"{a}.centroid_top_k", hp.centroid_top_k),
            u32(f"{a}.n_embd_backbone", hp.backbone),
            boolean(f"{a}.use_ordered_embeddings", hp.use_ordered_embeddings),
            boolean(f"{a}.attention.k_eq_v", hp.k_eq_v),
            string(f"{a}.requires_target_arch", TARGET_ARCH),
        ]
    return kvs


def _u32_or_array(key: str, values: tuple[int, ...]) -> KV:
    if len(set(values)) == 1:
        return u32(key, values[0])
    return array(key, values, GGUFValueType.UINT32)


def dialect_keys(dialect: HeadFormat) -> set[str]:
    """Key suffixes only one dialect has (used by translate to drop the other's)."""
    if dialect == "upstream":
        return {"embedding_length_out", "nextn_predict_layers"}
    return {
        "n_centroids",
        "centroid_top_k",
        "n_embd_backbone",
        "use_ordered_embeddings",
        "attention.k_eq_v",
        "requires_target_arch",
    }


def per_layer(value: Any, n: int) -> tuple[int, ...]:
    """A scalar-or-array GGUF value as one int per layer."""
    if isinstance(value, list | tuple):
        return tuple(int(v) for v in value)
    return (int(value),) * n


def expected_tensors(hp: HeadParams, n_vocab: int, dialect: HeadFormat) -> dict[str, tuple[int, ...]]:
    """Tensors the loader requires, by name, with llama.cpp-order shapes (``ne0`` first)."""
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
    return {tensor_name(k, dialect): v for k, v in out.items()}


def optional_tensors(dialect: HeadFormat) -> set[str]:
    """Tensors a loader accepts but does not need (the centroid masked embedding)."""
    return {tensor_name(n, dialect) for n in ("masked_embd_centroids.weight", "masked_embd_ordering")}
