"""Shape-faithful random-weight models: a ``gemma4`` main GGUF and an HF assistant folder.

The main model is written through the same streaming writer as a converted head, with the
tokenizer copied from a real GGUF; the assistant is a transformers-layout checkpoint
(config.json + BF16 safetensors, real tensor names) that ``convert-head`` then converts,
exactly as it would a downloaded one. Values come from ``fill``: seeded noise (std 0.02) for
matrices, written in their stored encoding at disk speed (Q4_0 / Q8_0 as random valid blocks),
and ~1 for norms and scalars, so the models run without NaNs and MoE routers spread tokens
over experts; they predict nothing useful.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFValueType

from lanebench import __version__
from lanebench.errors import BadInput
from lanebench.gguf import hf
from lanebench.gguf import keys as K
from lanebench.gguf.fill import constant, rope_freqs, tensor_fill
from lanebench.gguf.heads import TARGET_ARCH
from lanebench.gguf.quant import file_type, storage_type
from lanebench.gguf.reader import GgufFile, open_gguf, problems
from lanebench.gguf.shapes import FULL, SWA, HeadShape, MainShape
from lanebench.gguf.st_io import StPlan, write_checkpoint
from lanebench.gguf.tokenizer import tokenizer_kvs
from lanebench.gguf.writer import KV, TensorPlan, array, f32, string, u32, write_gguf

Q = GGMLQuantizationType
MAIN_ARCH = TARGET_ARCH  # the main model heads draft for


# ---- main model ------------------------------------------------------------------------


def main_tensors(s: MainShape) -> dict[str, tuple[int, ...]]:
    """Tensor names and numpy-order shapes of a gemma4 main model (llama.cpp's loader)."""
    h = s.hidden
    out: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (s.vocab, h),
        "output_norm.weight": (h,),
        "rope_freqs.weight": (s.head_dim_full // 2,),
    }
    for il, kind in enumerate(s.layer_types):
        b = f"blk.{il}."
        hd = s.head_dim_swa if kind == SWA else s.head_dim_full
        nkv = s.n_kv_swa if kind == SWA else s.n_kv_full
        out.update(
            {
                b + "attn_norm.weight": (h,),
                b + "attn_q.weight": (s.n_head * hd, h),
                b + "attn_k.weight": (nkv * hd, h),
                b + "attn_output.weight": (h, s.n_head * hd),
                b + "attn_q_norm.weight": (hd,),
                b + "attn_k_norm.weight": (hd,),
                b + "post_attention_norm.weight": (h,),
                b + "layer_output_scale.weight": (1,),
                b + "ffn_norm.weight": (h,),
                b + "ffn_gate.weight": (s.ffn, h),
                b + "ffn_up.weight": (s.ffn, h),
                b + "ffn_down.weight": (h, s.ffn),
                b + "post_ffw_norm.weight": (h,),
            }
        )
        if not (s.k_eq_v and kind == FULL):
            out[b + "attn_v.weight"] = (nkv * hd, h)
        if s.n_expert:
            e, fe = s.n_expert, s.expert_ffn
            out.update(
                {
                    b + "ffn_gate_inp.weight": (e, h),
                    b + "ffn_gate_inp.scale": (h,),
                    b + "pre_ffw_norm_2.weight": (h,),
                    b + "post_ffw_norm_1.weight": (h,),
                    b + "post_ffw_norm_2.weight": (h,),
                    b + "ffn_gate_up_exps.weight": (e, 2 * fe, h),
                    b + "ffn_down_exps.weight": (e, h, fe),
                    b + "ffn_down_exps.scale": (e,),
                }
            )
    return out


def main_kvs(s: MainShape) -> list[KV]:
    """gemma4 hyper-parameter keys for ``s`` (as upstream's converter writes them)."""
    a = MAIN_ARCH
    kvs = [
        u32(K.CONTEXT_LENGTH.name(a), s.context),
        u32(K.EMBEDDING_LENGTH.name(a), s.hidden),
        u32(K.BLOCK_COUNT.name(a), s.n_layer),
        u32(K.FEED_FORWARD_LENGTH.name(a), s.ffn),
        u32(K.HEAD_COUNT.name(a), s.n_head),
        array(K.HEAD_COUNT_KV.name(a), s.kv_heads(), GGUFValueType.UINT32),
        f32(K.ROPE_FREQ_BASE.name(a), s.rope_base),
        f32(K.ROPE_FREQ_BASE_SWA.name(a), s.rope_base_swa),
        f32(K.RMS_EPS.name(a), s.rms_eps),
        u32(K.KEY_LENGTH.name(a), s.head_dim_full),
        u32(K.VALUE_LENGTH.name(a), s.head_dim_full),
        u32(K.KEY_LENGTH_SWA.name(a), s.head_dim_swa),
        u32(K.VALUE_LENGTH_SWA.name(a), s.head_dim_swa),
        u32(K.SLIDING_WINDOW.name(a), s.sliding_window),
        u32(K.SHARED_KV_LAYERS.name(a), 0),
        u32(K.EMBEDDING_LENGTH_PER_LAYER_INPUT.name(a), 0),
        array(K.SLIDING_WINDOW_PATTERN.name(a), [t == SWA for t in s.layer_types], GGUFValueType.BOOL),
        u32(K.ROPE_DIMENSION_COUNT.name(a), s.head_dim_full),
        u32(K.ROPE_DIMENSION_COUNT_SWA.name(a), s.head_dim_swa),
        f32(K.FINAL_LOGIT_SOFTCAPPING.name(a), s.softcap),
    ]
    if s.n_expert:
        kvs += [
            u32(K.EXPERT_COUNT.name(a), s.n_expert),
            u32(K.EXPERT_USED_COUNT.name(a), s.n_expert_used),
            u32(K.EXPERT_FEED_FORWARD_LENGTH.name(a), s.expert_ffn),
        ]
    return kvs


def tokenizer_size(tok: GgufFile) -> int:
    """Tokens in a GGUF's vocabulary; BadInput naming the file when it holds none."""
    n = tok.n_tokens
    if n == 0:
        raise BadInput(f"--tokenizer-from {tok.path}: no tokenizer.ggml.tokens (a GGUF with a vocabulary)")
    return n


def fit_vocab(s: MainShape, tokenizer_from: Path | None) -> MainShape:
    """``s`` with the vocabulary size of ``tokenizer_from`` (unchanged when None), so a main
    model and an assistant synthesized for that tokenizer agree with it and with each other."""
    if tokenizer_from is None:
        return s
    return replace(s, vocab=tokenizer_size(open_gguf(tokenizer_from, "--tokenizer-from")))


def synth_main(
    out: Path,
    s: MainShape,
    tokenizer_from: Path,
    qtype: GGMLQuantizationType = Q.Q8_0,
    seed: int = 0,
    on_tensor: Callable[[TensorPlan], None] | None = None,
) -> int:
    """Write a random-weight gemma4 GGUF of shape ``s``; returns bytes written."""
    tok = open_gguf(tokenizer_from, "--tokenizer-from")
    s = replace(s, vocab=tokenizer_size(tok))
    plans: list[TensorPlan] = []
    for name, shape in main_tensors(s).items():
        if name == "rope_freqs.weight":
            rf = rope_freqs(s.head_dim_full, s.partial_rotary_full)
            plans.append(TensorPlan(name, shape, Q.F32, constant(rf)))
            continue
        qt = storage_type(shape, qtype)
        plans.append(TensorPlan(name, shape, qt, tensor_fill(name, shape, qt, seed)))
    kvs = [
        string(K.TYPE.template, "model"),
        string(K.NAME.template, f"{s.name} (lanebench synth, random weights)"),
        string("lanebench.synth.shape", s.name),
        u32("lanebench.synth.seed", seed),
        string("lanebench.synth.version", __version__),
        u32(K.QUANTIZATION_VERSION.template, 2),
        u32(K.FILE_TYPE.template, file_type(qtype)),
        *main_kvs(s),
        *tokenizer_kvs(tok),
    ]
    return write_gguf(out, MAIN_ARCH, kvs, plans, on_tensor=on_tensor, check=problems)


# ---- HF assistant ----------------------------------------------------------------------


def assistant_config(main: MainShape, head: HeadShape, architecture: str) -> dict[str, Any]:
    """A config.json for an assistant of ``head`` shape serving ``main``."""
    spec = hf.lookup(architecture, "--class")
    text = {
        "model_type": spec.text_model_type,
        "hidden_size": head.hidden,
        "intermediate_size": head.ffn,
        "num_hidden_layers": head.n_layer,
        "layer_types": list(head.layer_types),
        "num_attention_heads": main.n_head,
        "num_key_value_heads": main.n_kv_swa,
        "num_global_key_value_heads": main.n_kv_full,
        "head_dim": main.head_dim_swa,
        "global_head_dim": main.head_dim_full,
        "attention_k_eq_v": main.k_eq_v,
        "sliding_window": main.sliding_window,
        "rms_norm_eps": main.rms_eps,
        "vocab_size": main.vocab,
        "max_position_embeddings": main.context,
        "final_logit_softcapping": None,
        "num_kv_shared_layers": head.n_layer,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size_per_layer_input": 0,
        "enable_moe_block": False,
        "use_double_wide_mlp": False,
        "rope_parameters": {
            FULL: {
                "partial_rotary_factor": main.partial_rotary_full,
                "rope_theta": main.rope_base,
                "rope_type": "proportional",
            },
            SWA: {"rope_theta": main.rope_base_swa, "rope_type": "default"},
        },
    }
    return {
        "architectures": [architecture],
        "model_type": spec.model_type,
        "backbone_hidden_size": main.hidden,
        "use_ordered_embeddings": False,
        "num_centroids": 2048,
        "centroid_intermediate_top_k": 32,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "text_config": text,
    }


def synth_assistant(
    out_dir: Path,
    main: MainShape,
    head: HeadShape,
    architecture: str,
    seed: int = 0,
    shards: int = 1,
    tokenizer_from: Path | None = None,
) -> list[Path]:
    """Write config.json + BF16 safetensors for an assistant; returns the weight files.

    With ``tokenizer_from`` its vocabulary is that GGUF's size, as ``synth_main`` makes the main
    model's, so ``convert-head`` accepts the pair."""
    cfg = assistant_config(fit_vocab(main, tokenizer_from), head, architecture)
    spec = hf.spec_for(cfg)
    hp = spec.params(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    plans = []
    for name, shape in spec.tensors(hp, cfg).items():
        plans.append(StPlan(name, "BF16", shape, tensor_fill(name, shape, Q.BF16, seed)))
    return write_checkpoint(out_dir, plans, shards)
