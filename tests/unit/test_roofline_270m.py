"""The real Gemma 3 270M Q4_K_M GGUF: dense, tied embeddings, sliding window 512.

The expected bytes are summed here from gguf's own tensor list with a categorisation written
out independently of lanebench's, and checked against structural facts of the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import pytest

from lanebench.analysis.roofline import decode_ceiling_tps, roofline_of

CTX = 2150


@pytest.fixture(scope="module")
def reader(gemma_270m: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(gemma_270m)


@pytest.fixture(scope="module")
def result(gemma_270m: Path) -> Any:
    return roofline_of(gemma_270m, CTX, "f16")


def _hand(reader: gguf.GGUFReader) -> dict[str, int]:
    sums = {"attention": 0, "ffn_dense": 0, "output": 0, "other": 0}
    for t in reader.tensors:
        n = int(t.n_bytes)
        if t.name == "token_embd.weight":
            sums["output"] += n  # tied: the output matrix, read in full, once
        elif t.name.endswith("norm.weight"):
            sums["other"] += n
        elif t.name.split(".")[2] in {"attn_q", "attn_k", "attn_v", "attn_output"}:
            sums["attention"] += n
        elif t.name.split(".")[2] in {"ffn_gate", "ffn_up", "ffn_down"}:
            sums["ffn_dense"] += n
        else:
            raise AssertionError(f"unexpected tensor {t.name}")
    return sums


def test_structure(reader: gguf.GGUFReader, result: Any) -> None:
    names = {t.name for t in reader.tensors}
    assert "output.weight" not in names and "token_embd.weight" in names
    assert result.tied_embeddings
    assert result.arch == "gemma3"
    assert result.n_layer == 18
    assert result.window == 512
    assert result.n_swa_layers == 15  # layers 5, 11, 17 are global
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert result.breakdown["output"] == int(embd.n_bytes)  # counted once
    assert result.breakdown["embed_lookup"] == 0
    assert result.breakdown["experts"] == 0


def test_weights_by_hand(reader: gguf.GGUFReader, result: Any) -> None:
    hand = _hand(reader)
    for part, expected in hand.items():
        assert result.breakdown[part] == expected, part
    assert result.weights_bytes == sum(int(t.n_bytes) for t in reader.tensors)


def test_kv_by_hand(reader: gguf.GGUFReader, result: Any) -> None:
    kv_heads = int(reader.fields["gemma3.attention.head_count_kv"].contents())
    k_len = int(reader.fields["gemma3.attention.key_length"].contents())
    v_len = int(reader.fields["gemma3.attention.value_length"].contents())
    per_position = kv_heads * (k_len + v_len) * 2  # f16
    assert result.kv_bytes == (15 * 512 + 3 * CTX) * per_position


def test_ceiling_on_the_seed_machine(result: Any) -> None:
    # Strix Halo, 256 GB/s: ~261 MB per token bounds decode near 1000 tok/s
    assert 900 < decode_ceiling_tps(result.total_bytes, 256e9) < 1100
