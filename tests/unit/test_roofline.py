"""Roofline arithmetic against hand computation: GGML type sizes, SWA patterns, KV bytes,
tied embeddings, MoE active share, and the ceiling/percent/speculation helpers."""

from __future__ import annotations

import pytest

from lanebench.analysis.roofline import (
    TensorInfo,
    bytes_per_token,
    category,
    decode_ceiling_tps,
    expert_union_share,
    kv_bytes_per_token,
    model_shape,
    pct_of_ceiling,
    spec_bytes_per_token,
    swa_layers,
    type_nbytes,
)
from lanebench.errors import BadInput


@pytest.mark.parametrize(
    ("type_name", "n", "expected"),
    [
        ("Q4_0", 32, 18),
        ("q4_0", 2816 * 2112, 2816 * 2112 // 32 * 18),
        ("Q8_0", 64, 68),
        ("F16", 10, 20),
        ("bf16", 10, 20),
        ("F32", 3, 12),
        ("Q4_K", 256, 144),
        ("Q6_K", 256, 210),
        ("Q5_0", 32, 22),
    ],
)
def test_type_nbytes(type_name: str, n: int, expected: int) -> None:
    assert type_nbytes(type_name, n) == expected


def test_type_nbytes_rejects_partial_blocks_and_unknown_types() -> None:
    with pytest.raises(BadInput, match="whole number of Q4_0 blocks"):
        type_nbytes("Q4_0", 33)
    with pytest.raises(BadInput, match="unknown GGML type 'turbo3'"):
        type_nbytes("turbo3", 32, "KV cache type")


def _meta(arch: str = "gemma3", n_layer: int = 18, **extra: object) -> dict[str, object]:
    meta: dict[str, object] = {
        "general.architecture": arch,
        f"{arch}.block_count": n_layer,
        f"{arch}.embedding_length": 640,
        f"{arch}.attention.head_count": 4,
        f"{arch}.attention.head_count_kv": 1,
        f"{arch}.attention.key_length": 256,
        f"{arch}.attention.value_length": 256,
    }
    meta.update({f"{arch}.{k}": v for k, v in extra.items()})
    return meta


def test_gemma3_default_pattern_every_sixth_layer_is_global() -> None:
    is_swa, note = swa_layers(_meta(**{"attention.sliding_window": 512}), "gemma3", 18)
    assert note is None
    assert [il for il, s in enumerate(is_swa) if not s] == [5, 11, 17]


def test_pattern_from_metadata_int_and_bool_array() -> None:
    meta = _meta(**{"attention.sliding_window": 512, "attention.sliding_window_pattern": 3})
    assert [il for il, s in enumerate(swa_layers(meta, "gemma3", 9)[0]) if not s] == [2, 5, 8]
    pattern = [True, False] * 3
    meta = _meta("gemma4", 6, **{"attention.sliding_window": 8, "attention.sliding_window_pattern": pattern})
    assert swa_layers(meta, "gemma4", 6)[0] == tuple(pattern)


def test_dense_first_pattern_and_unknown_arch() -> None:
    meta = _meta("cohere2moe", 8, **{"attention.sliding_window": 4096})
    assert [il for il, s in enumerate(swa_layers(meta, "cohere2moe", 8)[0]) if not s] == [0, 4]
    meta = _meta("mystery", 4, **{"attention.sliding_window": 4096})
    is_swa, note = swa_layers(meta, "mystery", 4)
    assert is_swa == (False,) * 4
    assert note is not None and "full context" in note


def test_no_window_means_no_swa_layers() -> None:
    assert swa_layers(_meta(), "gemma3", 18)[0] == (False,) * 18


def test_model_shape_names_missing_key() -> None:
    meta = _meta()
    del meta["gemma3.block_count"]
    with pytest.raises(BadInput, match=r"gemma3\.block_count is missing"):
        model_shape(meta)


def test_kv_bytes_hand_computed_with_windows() -> None:
    shape = model_shape(_meta(**{"attention.sliding_window": 512}))
    row_f16 = 2 * 256 * 2  # K and V, 1 KV head of 256, 2 bytes each
    # 15 SWA layers read min(ctx, 512) positions, 3 global layers read ctx
    assert kv_bytes_per_token(shape, 2000, "f16") == 15 * 512 * row_f16 + 3 * 2000 * row_f16
    assert kv_bytes_per_token(shape, 100, "f16") == 18 * 100 * row_f16
    assert kv_bytes_per_token(shape, 2000, "q8_0") == (15 * 512 + 3 * 2000) * 2 * (256 // 32 * 34)
    assert kv_bytes_per_token(shape, 0, "f16") == 0


def test_kv_per_layer_heads_and_swa_head_dims() -> None:
    pattern = [True, True, False]
    meta = _meta(
        "gemma4",
        3,
        **{
            "attention.head_count_kv": [8, 8, 2],
            "attention.key_length": 512,
            "attention.value_length": 512,
            "attention.key_length_swa": 256,
            "attention.value_length_swa": 256,
            "attention.sliding_window": 1024,
            "attention.sliding_window_pattern": pattern,
        },
    )
    shape = model_shape(meta)
    ctx = 3000
    assert kv_bytes_per_token(shape, ctx) == 2 * 1024 * (2 * 8 * 256 * 2) + ctx * (2 * 2 * 512 * 2)


@pytest.mark.parametrize(
    ("name", "tied", "part"),
    [
        ("token_embd.weight", True, "output"),
        ("token_embd.weight", False, "embed_lookup"),
        ("output.weight", False, "output"),
        ("per_layer_token_embd.weight", False, "embed_lookup"),
        ("blk.0.attn_q.weight", True, "attention"),
        ("blk.0.attn_qkv.weight", True, "attention"),
        ("blk.3.attn_output.weight", True, "attention"),
        ("blk.0.attn_q_norm.weight", True, "other"),
        ("blk.0.ffn_gate.weight", True, "ffn_dense"),
        ("blk.0.ffn_down_shexp.weight", True, "ffn_dense"),
        ("blk.0.ffn_gate_up_exps.weight", True, "experts"),
        ("blk.0.ffn_down_exps.weight", True, "experts"),
        ("blk.0.ffn_down_exps.scale", True, "other"),
        ("blk.0.ffn_gate_inp.weight", True, "other"),
        ("blk.0.post_ffw_norm_2.weight", True, "other"),
        ("rope_freqs.weight", True, "other"),
    ],
)
def test_category(name: str, tied: bool, part: str) -> None:
    assert category(name, tied) == part


def _dense_tensors(tied: bool) -> list[TensorInfo]:
    ts = [
        TensorInfo("token_embd.weight", (64, 1000), "Q8_0"),
        TensorInfo("output_norm.weight", (64,), "F32"),
        TensorInfo("blk.0.attn_q.weight", (64, 64), "Q4_0"),
        TensorInfo("blk.0.attn_k.weight", (64, 32), "Q4_0"),
        TensorInfo("blk.0.attn_v.weight", (64, 32), "Q4_0"),
        TensorInfo("blk.0.attn_output.weight", (64, 64), "Q4_0"),
        TensorInfo("blk.0.ffn_up.weight", (64, 128), "F16"),
        TensorInfo("blk.0.ffn_down.weight", (128, 64), "F16"),
    ]
    if not tied:
        ts.append(TensorInfo("output.weight", (64, 1000), "Q8_0"))
    return ts


def _dense_meta() -> dict[str, object]:
    return {
        "general.architecture": "llama",
        "llama.block_count": 1,
        "llama.embedding_length": 64,
        "llama.attention.head_count": 2,
        "llama.attention.head_count_kv": 1,
    }


def test_tied_embeddings_counted_once_as_output() -> None:
    r = bytes_per_token(_dense_tensors(tied=True), _dense_meta(), ctx=0)
    embd = 64 * 1000 // 32 * 34
    assert r.tied_embeddings
    assert r.breakdown["output"] == embd
    assert r.breakdown["embed_lookup"] == 0
    assert r.breakdown["attention"] == (64 * 64 * 2 + 64 * 32 * 2) // 32 * 18
    assert r.breakdown["ffn_dense"] == 2 * 64 * 128 * 2
    assert r.breakdown["other"] == 64 * 4
    assert r.weights_bytes == r.file_tensor_bytes  # a dense tied model reads every byte once


def test_untied_embeddings_are_one_row_lookup() -> None:
    r = bytes_per_token(_dense_tensors(tied=False), _dense_meta(), ctx=10)
    embd = 64 * 1000 // 32 * 34
    assert not r.tied_embeddings
    assert r.breakdown["output"] == embd
    assert r.breakdown["embed_lookup"] == embd // 1000
    # head dim 64/2 = 32 (no key_length key), 1 KV head, f16, 10 positions
    assert r.kv_bytes == 10 * 2 * 32 * 2
    assert r.total_bytes == r.weights_bytes + r.kv_bytes


def test_expert_union_share() -> None:
    assert expert_union_share(8, 128, 1) == pytest.approx(8 / 128)
    assert expert_union_share(8, 128, 2) == pytest.approx(1 - (120 / 128) ** 2)
    assert expert_union_share(8, 128, 4) < 4 * 8 / 128
    assert expert_union_share(0, 0, 4) == 1.0


def test_ceiling_and_percent() -> None:
    assert decode_ceiling_tps(2e9, 256e9) == pytest.approx(128.0)
    assert pct_of_ceiling(64.0, 128.0) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        decode_ceiling_tps(0, 1)


def test_spec_bytes_per_token() -> None:
    # target 2 GB per step, 3 drafted tokens of a 0.1 GB head, 3.5 tokens per step
    assert spec_bytes_per_token(2e9, 1e8, 3, 3.5) == pytest.approx((2e9 + 3e8) / 3.5)
    # accepting nothing: one token per step, the head's reads are pure overhead
    assert spec_bytes_per_token(2e9, 1e8, 3, 1.0) > 2e9
    with pytest.raises(ValueError):
        spec_bytes_per_token(2e9, 1e8, 3, 0.5)
