"""Hugging Face assistant checkpoints: a registry keyed by HF architecture.

Each entry knows its ``model_type``, how to read ``config.json`` into ``HeadParams``, the
tensors the transformers class stores (names and shapes), and their upstream GGUF names.
``Gemma4UnifiedAssistantForCausalLM`` subclasses ``Gemma4AssistantForCausalLM`` in
transformers without changing a weight name, so both share one mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanebench.config.inputs import I32_MAX, Fields, load_json, read_limited, show
from lanebench.errors import BadInput
from lanebench.gguf.heads import HeadParams
from lanebench.gguf.shapes import FULL, SWA

_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "layer_scalar": "layer_output_scale.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_MAP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "pre_projection.weight": "nextn.pre_projection.weight",
    "post_projection.weight": "nextn.post_projection.weight",
    "masked_embedding.centroids.weight": "masked_embd_centroids.weight",
    "masked_embedding.token_ordering": "masked_embd_ordering",
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
CONFIG = "config.json"
_MAX_CONFIG = 16 << 20  # bytes; real configs are a few KiB
_WIDTH = 1 << 20  # hidden, FFN and head sizes (elements)
_COUNT = 1 << 12  # layers, attention heads
_VOCAB = 1 << 24  # tokens
_TINY, _HUGE = 1e-30, 1e30  # bounds of positive float hyper-parameters
INTEGER_TENSORS = ("masked_embedding.token_ordering",)  # token ids; every other tensor is float
_SOFTCAP = "final_logit_softcapping"  # config.json field; absent, null or 0: none


@dataclass(frozen=True, slots=True)
class HfHeadSpec:
    """How one HF assistant class is read."""

    architecture: str
    model_type: str
    text_model_type: str
    params: Callable[[dict[str, Any]], HeadParams]
    tensors: Callable[[HeadParams, dict[str, Any]], dict[str, tuple[int, ...]]]
    gguf_name: Callable[[str], str | None]


_REGISTRY: dict[str, HfHeadSpec] = {}


def register(spec: HfHeadSpec) -> None:
    """Add ``spec``; a second entry for the same architecture is a programming error."""
    if spec.architecture in _REGISTRY:
        raise ValueError(f"HF architecture {spec.architecture} registered twice")
    _REGISTRY[spec.architecture] = spec


def known() -> list[str]:
    return sorted(_REGISTRY)


def lookup(architecture: str, where: str = CONFIG) -> HfHeadSpec:
    """The spec for ``architecture``; BadInput listing the known ones otherwise."""
    try:
        return _REGISTRY[architecture]
    except KeyError:
        raise BadInput(
            f"{where}: architecture {show(architecture)} is not a known assistant head; "
            f"known: {', '.join(known())}"
        ) from None


def read_config(hf_dir: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint folder; BadInput if missing, too large or not JSON."""
    path = hf_dir / CONFIG
    if not hf_dir.is_dir():
        raise BadInput(f"{hf_dir}: not a folder (expected a Hugging Face checkpoint folder)")
    if not path.is_file():
        raise BadInput(f"{path}: missing (a Hugging Face checkpoint folder has config.json)")
    cfg = load_json(config_bytes(hf_dir), str(path))
    if not isinstance(cfg, dict):
        raise BadInput(f"{path}: expected a JSON object")
    return cfg


def config_bytes(hf_dir: Path) -> bytes:
    """The raw bytes of ``config.json`` (hashed into a converted head); BadInput if unreadable."""
    return read_limited(hf_dir / CONFIG, _MAX_CONFIG, CONFIG)


def spec_for(cfg: dict[str, Any], where: str = CONFIG) -> HfHeadSpec:
    """The registry entry for a config: its ``architectures[0]``, and a matching model_type."""
    archs = cfg.get("architectures") or []
    if not archs:
        raise BadInput(f"{where}: field 'architectures' is missing; known: {', '.join(known())}")
    if not isinstance(archs, list) or not isinstance(archs[0], str):
        raise BadInput(f"{where}: field 'architectures' is {show(archs)}, expected a list of class names")
    spec = lookup(archs[0], where)
    if cfg.get("model_type") != spec.model_type:
        raise BadInput(
            f"{where}: field 'model_type' is {show(cfg.get('model_type'))}, expected "
            f"{spec.model_type!r} for {spec.architecture}"
        )
    return spec


def _text(cfg: dict[str, Any]) -> Fields:
    return Fields(cfg, CONFIG).table("text_config", required=True)


def gemma4_params(cfg: dict[str, Any]) -> HeadParams:
    """HeadParams from a Gemma 4 assistant config (either class); every field typed and bounded."""
    c = Fields(cfg, CONFIG)
    t = _text(cfg)
    types = t.str_list("layer_types", (SWA, FULL), _COUNT)
    n_layer = t.integer("num_hidden_layers", 1, _COUNT)
    if len(types) != n_layer:
        raise BadInput(
            f"config.json: text_config.layer_types has {len(types)} entries, num_hidden_layers is {n_layer}"
        )
    is_swa = tuple(x == SWA for x in types)
    n_kv_swa = t.integer("num_key_value_heads", 1, _COUNT)
    n_kv_full = t.integer("num_global_key_value_heads", 1, _COUNT, default=n_kv_swa)
    hd_swa = t.integer("head_dim", 1, _WIDTH)
    hd_full = t.integer("global_head_dim", 1, _WIDTH, default=hd_swa)
    rope = t.table("rope_parameters")
    rope_full, rope_swa = rope.table(FULL), rope.table(SWA)
    softcap = t.data.get(_SOFTCAP)
    n_centroids = c.integer("num_centroids", 1, _VOCAB, default=2048)
    tie_word_embeddings(cfg)  # read when lm_head.weight is stored; checked with the rest here
    return HeadParams(
        hidden=t.integer("hidden_size", 1, _WIDTH),
        backbone=c.integer("backbone_hidden_size", 1, _WIDTH),
        is_swa=is_swa,
        n_head=t.integer("num_attention_heads", 1, _COUNT),
        kv_heads=tuple(n_kv_swa if s else n_kv_full for s in is_swa),
        head_dim_full=hd_full,
        head_dim_swa=hd_swa,
        ffn=(t.integer("intermediate_size", 1, _WIDTH),) * n_layer,
        sliding_window=t.integer("sliding_window", 1, I32_MAX),
        rope_base=rope_full.number("rope_theta", _TINY, _HUGE, default=1_000_000.0),
        rope_base_swa=rope_swa.number("rope_theta", _TINY, _HUGE, default=10_000.0),
        rope_dim_full=hd_full,
        rope_dim_swa=int(hd_swa * rope_swa.number("partial_rotary_factor", 0.0, 1.0, default=1.0)),
        rms_eps=t.number("rms_norm_eps", _TINY, 1.0, default=1e-6),
        context=t.integer("max_position_embeddings", 1, I32_MAX, default=131072),
        n_centroids=n_centroids,
        centroid_top_k=c.integer("centroid_intermediate_top_k", 1, n_centroids, default=32),
        use_ordered_embeddings=c.flag("use_ordered_embeddings", default=False),
        k_eq_v=t.flag("attention_k_eq_v", default=False),
        softcap=t.number(_SOFTCAP, _TINY, _HUGE) if softcap else None,
    )


def partial_rotary_full(cfg: dict[str, Any]) -> float:
    """Fraction of the full-attention head that is rotated (proportional RoPE), in [0, 1]."""
    rope = _text(cfg).table("rope_parameters").table(FULL)
    return rope.number("partial_rotary_factor", 0.0, 1.0, default=1.0)


def vocab_size(cfg: dict[str, Any]) -> int:
    """``text_config.vocab_size`` (tokens), at most 2**24."""
    return _text(cfg).integer("vocab_size", 1, _VOCAB)


def tie_word_embeddings(cfg: dict[str, Any]) -> bool:
    """Whether ``lm_head.weight`` is the embedding (then a stored copy is skipped)."""
    return Fields(cfg, CONFIG).flag("tie_word_embeddings", default=True)


def gemma4_tensors(hp: HeadParams, cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """HF tensor names and numpy-order shapes the transformers class stores."""
    h, bb, v = hp.hidden, hp.backbone, vocab_size(cfg)
    out: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (v, h),
        "model.norm.weight": (h,),
        "pre_projection.weight": (h, 2 * bb),
        "post_projection.weight": (bb, h),
    }
    for il in range(hp.n_layer):
        p, hd, ff = f"model.layers.{il}.", hp.head_dim(il), hp.ffn[il]
        for norm in (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ):
            out[p + norm + ".weight"] = (h,)
        out[p + "layer_scalar"] = (1,)
        out[p + "self_attn.q_proj.weight"] = (hp.n_head * hd, h)
        out[p + "self_attn.q_norm.weight"] = (hd,)
        out[p + "self_attn.o_proj.weight"] = (h, hp.n_head * hd)
        out[p + "mlp.gate_proj.weight"] = (ff, h)
        out[p + "mlp.up_proj.weight"] = (ff, h)
        out[p + "mlp.down_proj.weight"] = (h, ff)
    if hp.use_ordered_embeddings:
        out["masked_embedding.centroids.weight"] = (hp.n_centroids, h)
        out["masked_embedding.token_ordering"] = (v,)
    return out


def gemma4_gguf_name(hf_name: str) -> str | None:
    """Upstream GGUF name of an HF tensor; None for a tensor that is not mapped."""
    if hf_name in _GLOBAL_MAP:
        return _GLOBAL_MAP[hf_name]
    m = _LAYER_RE.match(hf_name)
    if m and m[2] in _LAYER_MAP:
        return f"blk.{m[1]}.{_LAYER_MAP[m[2]]}"
    return None


for _arch, _mt, _tmt in (
    ("Gemma4AssistantForCausalLM", "gemma4_assistant", "gemma4_text"),
    ("Gemma4UnifiedAssistantForCausalLM", "gemma4_unified_assistant", "gemma4_unified_text"),
):
    register(HfHeadSpec(_arch, _mt, _tmt, gemma4_params, gemma4_tensors, gemma4_gguf_name))
