"""Hugging Face assistant checkpoints: a registry keyed by HF architecture.

Each entry knows its ``model_type``, how to read ``config.json`` into ``HeadParams``, the
tensors the transformers class stores (names and shapes), and their upstream GGUF names.
``Gemma4UnifiedAssistantForCausalLM`` subclasses ``Gemma4AssistantForCausalLM`` in
transformers without changing a weight name, so both share one mapping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanebench.errors import BadInput
from lanebench.gguf.heads import HeadParams
from lanebench.gguf.shapes import SWA

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
CENTROID_TENSORS = ("masked_embedding.centroids.weight", "masked_embedding.token_ordering")


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


def lookup(architecture: str, where: str = "config.json") -> HfHeadSpec:
    """The spec for ``architecture``; BadInput listing the known ones otherwise."""
    try:
        return _REGISTRY[architecture]
    except KeyError:
        raise BadInput(
            f"{where}: architecture {architecture!r} is not a known assistant head; "
            f"known: {', '.join(known())}"
        ) from None


def read_config(hf_dir: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint folder; BadInput if missing or not JSON."""
    path = hf_dir / "config.json"
    if not hf_dir.is_dir():
        raise BadInput(f"{hf_dir}: not a folder (expected a Hugging Face checkpoint folder)")
    if not path.is_file():
        raise BadInput(f"{path}: missing (a Hugging Face checkpoint folder has config.json)")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise BadInput(f"{path}: expected a JSON object")
    return cfg


def spec_for(cfg: dict[str, Any], where: str = "config.json") -> HfHeadSpec:
    """The registry entry for a config: its ``architectures[0]``, and a matching model_type."""
    archs = cfg.get("architectures") or []
    if not archs:
        raise BadInput(f"{where}: field 'architectures' is missing; known: {', '.join(known())}")
    spec = lookup(str(archs[0]), where)
    if cfg.get("model_type") != spec.model_type:
        raise BadInput(
            f"{where}: field 'model_type' is {cfg.get('model_type')!r}, expected "
            f"{spec.model_type!r} for {spec.architecture}"
        )
    return spec


def _need(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise BadInput(f"config.json: field '{where}{key}' is missing")
    return d[key]


def gemma4_params(cfg: dict[str, Any]) -> HeadParams:
    """HeadParams from a Gemma 4 assistant config (either class)."""
    text = cfg.get("text_config")
    if not isinstance(text, dict):
        raise BadInput("config.json: field 'text_config' is missing")
    t = "text_config."
    types = list(_need(text, "layer_types", t))
    n_layer = int(_need(text, "num_hidden_layers", t))
    if len(types) != n_layer:
        raise BadInput(
            f"config.json: text_config.layer_types has {len(types)} entries, num_hidden_layers is {n_layer}"
        )
    is_swa = tuple(x == SWA for x in types)
    n_kv_swa = int(_need(text, "num_key_value_heads", t))
    n_kv_full = int(text.get("num_global_key_value_heads") or n_kv_swa)
    hd_swa = int(_need(text, "head_dim", t))
    hd_full = int(text.get("global_head_dim") or hd_swa)
    rope = text.get("rope_parameters") or {}
    rope_full, rope_swa = rope.get("full_attention", {}), rope.get("sliding_attention", {})
    return HeadParams(
        hidden=int(_need(text, "hidden_size", t)),
        backbone=int(_need(cfg, "backbone_hidden_size", "")),
        is_swa=is_swa,
        n_head=int(_need(text, "num_attention_heads", t)),
        kv_heads=tuple(n_kv_swa if s else n_kv_full for s in is_swa),
        head_dim_full=hd_full,
        head_dim_swa=hd_swa,
        ffn=(int(_need(text, "intermediate_size", t)),) * n_layer,
        sliding_window=int(_need(text, "sliding_window", t)),
        rope_base=float(rope_full.get("rope_theta", 1_000_000.0)),
        rope_base_swa=float(rope_swa.get("rope_theta", 10_000.0)),
        rope_dim_full=hd_full,
        rope_dim_swa=int(hd_swa * float(rope_swa.get("partial_rotary_factor", 1.0))),
        rms_eps=float(text.get("rms_norm_eps", 1e-6)),
        context=int(text.get("max_position_embeddings", 131072)),
        n_centroids=int(cfg.get("num_centroids", 2048)),
        centroid_top_k=int(cfg.get("centroid_intermediate_top_k", 32)),
        use_ordered_embeddings=bool(cfg.get("use_ordered_embeddings", False)),
        k_eq_v=bool(text.get("attention_k_eq_v", False)),
        softcap=text.get("final_logit_softcapping") or None,
    )


def partial_rotary_full(cfg: dict[str, Any]) -> float:
    """Fraction of the full-attention head that is rotated (proportional RoPE)."""
    rope = (cfg.get("text_config") or {}).get("rope_parameters") or {}
    return float(rope.get("full_attention", {}).get("partial_rotary_factor", 1.0))


def vocab_size(cfg: dict[str, Any]) -> int:
    return int(_need(cfg.get("text_config") or {}, "vocab_size", "text_config."))


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
