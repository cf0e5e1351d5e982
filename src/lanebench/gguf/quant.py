"""Encode weights into GGUF types in row chunks, and the error each type may introduce.

Encoding goes through ``gguf.quants`` (numpy). A chunk is a slab of whole rows, so Q8_0
blocks (32 values along a row) never straddle chunks. The only change to a weight is its
type: BF16 -> BF16 copies bits, everything else is one rounding step with a known bound.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from lanebench.errors import BadInput
from lanebench.gguf.st_io import f32_to_bf16_bits, to_f32

Q = GGMLQuantizationType
QTYPES: dict[str, GGMLQuantizationType] = {"q8_0": Q.Q8_0, "f16": Q.F16, "bf16": Q.BF16, "f32": Q.F32}
# synth may also write Q4_0 (the QAT release format); convert-head keeps to QTYPES (--verify bounds)
SYNTH_QTYPES: dict[str, GGMLQuantizationType] = {**QTYPES, "q4_0": Q.Q4_0}
CHUNK_BYTES = 16 << 20  # float32 bytes per chunk


def parse_qtype(
    name: str, flag: str = "--type", table: dict[str, GGMLQuantizationType] = QTYPES
) -> GGMLQuantizationType:
    """``q8_0|f16|bf16|f32`` (or another ``table``) -> the GGML type; BadInput otherwise."""
    try:
        return table[name.lower()]
    except KeyError:
        raise BadInput(f"{flag} {name!r} is not one of {', '.join(table)}") from None


def storage_type(shape: tuple[int, ...], wanted: GGMLQuantizationType) -> GGMLQuantizationType:
    """Type a tensor is stored as: vectors stay F32 (llama.cpp convention); Q8_0 and Q4_0 need
    rows that are a multiple of 32 long, else F16."""
    if len(shape) < 2:
        return Q.F32
    if wanted in (Q.Q8_0, Q.Q4_0) and shape[-1] % 32:
        return Q.F16
    return wanted


def encode(part: np.ndarray, src_dtype: str, qtype: GGMLQuantizationType) -> np.ndarray:
    """One slab of stored values (BF16 as raw uint16) encoded as ``qtype``."""
    if qtype == Q.BF16 and src_dtype == "BF16":
        return part
    if qtype == Q.I32:
        return part.astype(np.int32)
    x = to_f32(part, src_dtype)
    if qtype == Q.F32:
        return x
    if qtype == Q.F16:
        return x.astype(np.float16)
    if qtype == Q.BF16:
        return f32_to_bf16_bits(x)
    return quantize(x, qtype)


def row_slabs(src: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """``src`` as 2-D slabs of whole rows, each about ``chunk_bytes`` as float32."""
    rows = src.reshape(1, -1) if src.ndim < 2 else src.reshape(-1, src.shape[-1])
    step = max(1, chunk_bytes // max(1, rows.shape[1] * 4))
    for i in range(0, rows.shape[0], step):
        yield rows[i : i + step]


def encode_chunks(src: np.ndarray, src_dtype: str, qtype: GGMLQuantizationType) -> Iterator[np.ndarray]:
    """Encoded chunks of a whole tensor, in file order."""
    for slab in row_slabs(src):
        yield encode(slab, src_dtype, qtype)


def bound(x: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """Largest |error| one encoding of float32 ``x`` (2-D) into ``qtype`` may introduce."""
    ax = np.abs(x)
    if qtype == Q.F32:
        return np.zeros_like(ax)
    if qtype == Q.F16:
        return np.maximum(ax * 2.0**-11, 2.0**-25)
    if qtype == Q.BF16:
        return ax * 2.0**-8
    if qtype == Q.Q8_0:
        blocks = ax.reshape(ax.shape[0], -1, 32)
        d = blocks.max(axis=-1, keepdims=True) / 127
        d16 = d.astype(np.float16).astype(np.float32)
        b = 0.5 * d + 127 * np.abs(d - d16) + 1e-6 * d
        return np.broadcast_to(b, blocks.shape).reshape(ax.shape)
    raise ValueError(f"no error bound for {qtype.name}")


def compare(
    src: np.ndarray, src_dtype: str, stored: np.ndarray, qtype: GGMLQuantizationType
) -> tuple[float, float]:
    """(max |error|, max error / bound) of ``stored`` bytes against the source values.

    A ratio ≤ 1 means every value is within its type's bound; BF16 from BF16 must be exact.
    """
    worst_err, worst_ratio = 0.0, 0.0
    done = 0
    flat = stored.reshape(-1)
    for slab in row_slabs(src):
        x = to_f32(slab, src_dtype)
        nbytes = encode(slab[:1], src_dtype, qtype).nbytes * slab.shape[0]
        got = dequantize(flat[done : done + nbytes], qtype).reshape(x.shape)
        done += nbytes
        err = np.abs(got.astype(np.float32) - x)
        exact = qtype == Q.BF16 and src_dtype == "BF16"
        b = np.zeros_like(x) if exact else bound(x, qtype)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            ratio = np.where(err == 0, 0.0, err / np.where(b > 0, b, np.inf))
        ratio = np.where((err > 0) & (b == 0), np.inf, ratio)
        worst_err = max(worst_err, float(err.max(initial=0.0)))
        worst_ratio = max(worst_ratio, float(ratio.max(initial=0.0)))
    return worst_err, worst_ratio
