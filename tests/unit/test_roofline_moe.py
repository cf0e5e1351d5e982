"""Gemma 4 26B-A4B (MoE) roofline from its shape (shared/FACTS.md), with no 14 GB download.

Shape: hidden 2816, 30 layers (25 SWA + 5 full, every 6th global), 16 heads, KV heads 8 (SWA) /
2 (full), head dim 256 (SWA) / 512 (full), shared FFN 2112, 128 experts x 704, top-8, vocab
262144, sliding window 1024.

Assumptions about the real QAT Q4_0 file, stated here because no copy is at hand:
- every weight matrix is Q4_0, token_embd included; embeddings are tied (no output.weight);
- 1-D tensors (norms, scales, rope_freqs) and the router ``ffn_gate_inp`` are F32 (llama.cpp's
  quantizer never quantizes ``ffn_gate_inp.weight``);
- full-attention layers have no ``attn_v`` (attention_k_eq_v: V is K), SWA layers have one;
- experts are stored fused as ``ffn_gate_up_exps`` + ``ffn_down_exps``.

(a) the pure core over a tensor list; (b) a real GGUF with that tensor table and metadata,
written as a sparse file of full size, read back through the GGUFReader adapter.
"""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from lanebench.analysis.roofline import (
    TensorInfo,
    bytes_per_token,
    decode_ceiling_tps,
    pct_of_ceiling,
    roofline_of,
)

N_EMBD, N_LAYER, N_HEAD, VOCAB = 2816, 30, 16, 262144
N_FF, N_EXPERT, N_FF_EXP, TOP_K = 2112, 128, 704, 8
HD_SWA, HD_FULL, KV_SWA, KV_FULL, WINDOW = 256, 512, 8, 2, 1024
IS_SWA = [il % 6 != 5 for il in range(N_LAYER)]


def q4(n: int) -> int:
    """Q4_0: 18 bytes per 32 weights."""
    assert n % 32 == 0
    return n // 32 * 18


def gemma4_26b_tensors() -> list[TensorInfo]:
    t = [
        TensorInfo("token_embd.weight", (N_EMBD, VOCAB), "Q4_0"),
        TensorInfo("output_norm.weight", (N_EMBD,), "F32"),
        TensorInfo("rope_freqs.weight", (HD_FULL // 2,), "F32"),
    ]
    for il, swa in enumerate(IS_SWA):
        hd, kvh = (HD_SWA, KV_SWA) if swa else (HD_FULL, KV_FULL)
        b = f"blk.{il}."
        t += [
            TensorInfo(b + "attn_norm.weight", (N_EMBD,), "F32"),
            TensorInfo(b + "attn_q.weight", (N_EMBD, N_HEAD * hd), "Q4_0"),
            TensorInfo(b + "attn_k.weight", (N_EMBD, kvh * hd), "Q4_0"),
            TensorInfo(b + "attn_output.weight", (N_HEAD * hd, N_EMBD), "Q4_0"),
            TensorInfo(b + "attn_q_norm.weight", (hd,), "F32"),
            TensorInfo(b + "attn_k_norm.weight", (hd,), "F32"),
            TensorInfo(b + "post_attention_norm.weight", (N_EMBD,), "F32"),
            TensorInfo(b + "layer_output_scale.weight", (1,), "F32"),
            TensorInfo(b + "ffn_norm.weight", (N_EMBD,), "F32"),
            TensorInfo(b + "ffn_gate.weight", (N_EMBD, N_FF), "Q4_0"),
            TensorInfo(b + "ffn_up.weight", (N_EMBD, N_FF), "Q4_0"),
            TensorInfo(b + "ffn_down.weight", (N_FF, N_EMBD), "Q4_0"),
            TensorInfo(b + "post_ffw_norm.weight", (N_EMBD,), "F32"),
            TensorInfo(b + "ffn_gate_inp.weight", (N_EMBD, N_EXPERT), "F32"),
            TensorInfo(b + "ffn_gate_inp.scale", (N_EMBD,), "F32"),
            TensorInfo(b + "pre_ffw_norm_2.weight", (N_EMBD,), "F32"),
            TensorInfo(b + "post_ffw_norm_1.weight", (N_EMBD,), "F32"),
            TensorInfo(b + "post_ffw_norm_2.weight", (N_EMBD,), "F32"),
            TensorInfo(b + "ffn_gate_up_exps.weight", (N_EMBD, 2 * N_FF_EXP, N_EXPERT), "Q4_0"),
            TensorInfo(b + "ffn_down_exps.weight", (N_FF_EXP, N_EMBD, N_EXPERT), "Q4_0"),
            TensorInfo(b + "ffn_down_exps.scale", (N_EXPERT,), "F32"),
        ]
        if swa:
            t.append(TensorInfo(b + "attn_v.weight", (N_EMBD, kvh * hd), "Q4_0"))
    return t


def gemma4_26b_meta() -> dict[str, object]:
    a = "gemma4"
    return {
        "general.architecture": a,
        f"{a}.block_count": N_LAYER,
        f"{a}.embedding_length": N_EMBD,
        f"{a}.feed_forward_length": N_FF,
        f"{a}.expert_feed_forward_length": N_FF_EXP,
        f"{a}.expert_count": N_EXPERT,
        f"{a}.expert_used_count": TOP_K,
        f"{a}.attention.head_count": N_HEAD,
        f"{a}.attention.head_count_kv": [KV_SWA if s else KV_FULL for s in IS_SWA],
        f"{a}.attention.key_length": HD_FULL,
        f"{a}.attention.value_length": HD_FULL,
        f"{a}.attention.key_length_swa": HD_SWA,
        f"{a}.attention.value_length_swa": HD_SWA,
        f"{a}.attention.sliding_window": WINDOW,
        f"{a}.attention.sliding_window_pattern": IS_SWA,
    }


def hand_weights() -> dict[str, int]:
    """Per-token weight bytes computed by hand from the shape, part by part."""
    attn_swa = q4(N_EMBD * N_HEAD * HD_SWA) * 2 + q4(N_EMBD * KV_SWA * HD_SWA) * 2
    attn_full = q4(N_EMBD * N_HEAD * HD_FULL) * 2 + q4(N_EMBD * KV_FULL * HD_FULL)  # no V
    experts_per_layer = q4(N_EMBD * 2 * N_FF_EXP * N_EXPERT) + q4(N_FF_EXP * N_EMBD * N_EXPERT)
    # 8 hidden-size vectors (5 norms of the block, 3 of the MoE branch incl. router scale),
    # the layer output scale, the per-expert down scale
    norms_per_layer = 4 * (8 * N_EMBD + 1 + N_EXPERT)
    return {
        "attention": 25 * attn_swa + 5 * attn_full,
        "ffn_dense": N_LAYER * 3 * q4(N_EMBD * N_FF),
        "experts": N_LAYER * experts_per_layer * TOP_K // N_EXPERT,
        "output": q4(N_EMBD * VOCAB),
        "other": N_LAYER * (norms_per_layer + 4 * N_EMBD * N_EXPERT)
        + 4 * (25 * 2 * HD_SWA + 5 * 2 * HD_FULL)  # q/k norms
        + 4 * (N_EMBD + HD_FULL // 2),  # output_norm, rope_freqs
    }


def test_shape_matches_facts_parameter_counts() -> None:
    total = sum(t.n_elements for t in gemma4_26b_tensors() if len(t.shape) > 1)
    assert total == pytest.approx(25.2e9, rel=0.01)
    experts = sum(t.n_elements for t in gemma4_26b_tensors() if "_exps.weight" in t.name)
    active = total - experts + experts * TOP_K / N_EXPERT
    assert active == pytest.approx(3.8e9, rel=0.02)


def test_weights_per_token_by_hand_and_near_2_1_gb() -> None:
    r = bytes_per_token(gemma4_26b_tensors(), gemma4_26b_meta(), ctx=0)
    hand = hand_weights()
    for part, expected in hand.items():
        assert r.breakdown[part] == expected, part
    assert r.breakdown["embed_lookup"] == 0  # tied: no separate row lookup
    assert r.kv_bytes == 0
    assert r.expert_count == N_EXPERT and r.expert_used_count == TOP_K
    assert r.n_swa_layers == 25
    assert r.weights_bytes == pytest.approx(2.1e9, rel=0.06)
    # the experts are 90% of the file but only 1/16 of them is read
    assert r.experts_stored_bytes == hand["experts"] * N_EXPERT // TOP_K
    assert r.file_tensor_bytes > 6 * r.weights_bytes


def test_seed_plain_decode_is_about_half_the_strix_halo_ceiling() -> None:
    r = bytes_per_token(gemma4_26b_tensors(), gemma4_26b_meta(), ctx=0)
    ceiling = decode_ceiling_tps(r.weights_bytes, 256e9)
    assert 110 < ceiling < 125  # FACTS: "about 120 tok/s"
    assert 45 < pct_of_ceiling(59.4, ceiling) < 55


def test_kv_at_seed_context_counts_swa_layers_at_window() -> None:
    ctx = 1150 + 1000
    r = bytes_per_token(gemma4_26b_tensors(), gemma4_26b_meta(), ctx=ctx, kv_type="f16")
    swa = 25 * WINDOW * 2 * KV_SWA * HD_SWA * 2
    full = 5 * ctx * 2 * KV_FULL * HD_FULL * 2
    assert r.kv_bytes == swa + full
    q8 = bytes_per_token(gemma4_26b_tensors(), gemma4_26b_meta(), ctx=ctx, kv_type="q8_0")
    assert q8.kv_bytes == (swa + full) // 64 * 34


def test_verification_step_reads_more_experts() -> None:
    r = bytes_per_token(gemma4_26b_tensors(), gemma4_26b_meta(), ctx=0)
    assert r.step_bytes(1) == pytest.approx(r.total_bytes, rel=1e-9)
    four = r.step_bytes(4)
    assert r.total_bytes < four < r.total_bytes + 3 * r.breakdown["experts"]


def write_sparse_gguf(path: Path, tensors: list[TensorInfo], meta: dict[str, object]) -> None:
    """A real GGUF with this tensor table and metadata; data is a hole (truncate to full size)."""
    arch = str(meta["general.architecture"])
    w = gguf.GGUFWriter(path, arch)
    for key, value in meta.items():
        if key == "general.architecture":
            continue
        if isinstance(value, list):
            w.add_array(key, value)
        else:
            w.add_uint32(key, int(value))  # type: ignore[call-overload]
    for t in tensors:
        w.add_tensor_info(
            t.name,
            tuple(reversed(t.shape)),
            np.dtype(np.float32),
            t.nbytes,
            raw_dtype=gguf.GGMLQuantizationType[t.ggml_type],
        )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    align = gguf.GGUF_DEFAULT_ALIGNMENT
    start = -(-path.stat().st_size // align) * align
    os.truncate(path, start + sum(-(-t.nbytes // align) * align for t in tensors))


def test_adapter_reads_a_real_gguf_of_that_shape(tmp_path: Path) -> None:
    tensors, meta = gemma4_26b_tensors(), gemma4_26b_meta()
    path = tmp_path / "gemma4-26b-a4b-shape.gguf"
    write_sparse_gguf(path, tensors, meta)
    assert path.stat().st_size > 14e9  # full size on paper, a hole on disk
    from_file = roofline_of(path, ctx=2150, kv_type="q8_0")
    pure = bytes_per_token(tensors, meta, ctx=2150, kv_type="q8_0")
    assert from_file.to_dict() == pure.to_dict()
    assert from_file.n_swa_layers == 25 and from_file.window == WINDOW
