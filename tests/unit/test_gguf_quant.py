"""Encoding bounds: every type's error stays within its bound, and a corruption is caught."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from lanebench.errors import BadInput
from lanebench.gguf.quant import compare, encode_chunks, parse_qtype, storage_type
from lanebench.gguf.st_io import f32_to_bf16_bits, to_f32


def _src(dtype: str) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((64, 96)).astype(np.float32)
    x[3, :32] *= 1e-3  # a block with a small range
    return f32_to_bf16_bits(x) if dtype == "BF16" else x.astype(np.float16 if dtype == "F16" else np.float32)


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.F16, Q.BF16, Q.F32])
@pytest.mark.parametrize("dtype", ["BF16", "F16", "F32"])
def test_encoding_is_within_bound(qtype: Q, dtype: str) -> None:
    src = _src(dtype)
    stored = np.concatenate([c.reshape(-1).view(np.uint8) for c in encode_chunks(src, dtype, qtype)])
    _, ratio = compare(src, dtype, stored, qtype)
    assert ratio <= 1.0


def test_bf16_from_bf16_is_exact() -> None:
    src = _src("BF16")
    stored = np.concatenate([c.reshape(-1).view(np.uint8) for c in encode_chunks(src, "BF16", Q.BF16)])
    assert compare(src, "BF16", stored, Q.BF16) == (0.0, 0.0)


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.F16, Q.BF16])
def test_a_corrupted_value_fails_the_bound(qtype: Q) -> None:
    src = _src("F32")
    stored = np.concatenate([c.reshape(-1).view(np.uint8) for c in encode_chunks(src, "F32", qtype)]).copy()
    stored[-1] ^= 0x40  # flip a high bit of the last value
    _, ratio = compare(src, "F32", stored, qtype)
    assert ratio > 1.0


def test_bf16_rounding_is_to_nearest_even() -> None:
    x = np.array([1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5], dtype=np.float32)
    back = to_f32(f32_to_bf16_bits(x), "BF16")
    assert back.tolist() == [1.0, 1.0 + 4 * 2**-8, -2.5]


def test_storage_type_rules() -> None:
    assert storage_type((64,), Q.Q8_0) == Q.F32
    assert storage_type((8, 48), Q.Q8_0) == Q.F16
    assert storage_type((8, 64), Q.Q8_0) == Q.Q8_0


def test_unknown_type_flag() -> None:
    with pytest.raises(BadInput, match="--type"):
        parse_qtype("q4_k")
