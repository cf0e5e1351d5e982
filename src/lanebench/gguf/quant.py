"""Encode weights into GGUF types in row chunks, and the error each type may introduce.

Encoding goes through ``gguf.quants`` (numpy). A chunk is a slab of whole rows, so Q8_0
blocks (32 values along a row) never straddle chunks. The only change to a weight is its
type: BF16 -> BF16 copies bits, everything else is one rounding step with a known bound.

Random weights (``synth``) skip encoding: ``random_blocks`` writes valid Q4_0 / Q8_0 blocks
straight from random bytes, ``random_floats`` looks random 16-bit indices up in a table of
normal samples; either costs a few passes over memory per chunk, never a float per value.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
from gguf import GGMLQuantizationType, LlamaFileType
from gguf.quants import dequantize, quantize

from lanebench.errors import BadInput
from lanebench.gguf.st_io import f32_to_bf16_bits, to_f32

Q = GGMLQuantizationType
QTYPES: dict[str, GGMLQuantizationType] = {"q8_0": Q.Q8_0, "f16": Q.F16, "bf16": Q.BF16, "f32": Q.F32}
# synth may also write Q4_0 (the QAT release format); convert-head keeps to QTYPES (--verify bounds)
SYNTH_QTYPES: dict[str, GGMLQuantizationType] = {**QTYPES, "q4_0": Q.Q4_0}
CHUNK_BYTES = 16 << 20  # float32 bytes per chunk
# general.file_type (llama.cpp's LLAMA_FTYPE) of a model whose weights are mostly of a type
FILE_TYPES: dict[GGMLQuantizationType, LlamaFileType] = {
    Q.F32: LlamaFileType.ALL_F32,
    Q.F16: LlamaFileType.MOSTLY_F16,
    Q.BF16: LlamaFileType.MOSTLY_BF16,
    Q.Q4_0: LlamaFileType.MOSTLY_Q4_0,
    Q.Q8_0: LlamaFileType.MOSTLY_Q8_0,
}
BLOCK = 32  # values per Q4_0 / Q8_0 block
# bytes per block: an f16 scale d, then the codes (Q4_0: 16 bytes of nibbles q, value (q - 8) * d;
# Q8_0: 32 int8 q, value q * d)
BLOCK_BYTES: dict[GGMLQuantizationType, int] = {Q.Q4_0: 2 + BLOCK // 2, Q.Q8_0: 2 + BLOCK}
# mean square of a random block's codes: Q4_0 nibbles stand for -8..7 (all 16 occur in ggml's own
# quantizer); Q8_0 codes are -127..127 (a random -128 becomes 0, keeping the mean at 0)
_CODE_MS: dict[GGMLQuantizationType, float] = {
    Q.Q4_0: sum((k - 8) ** 2 for k in range(16)) / 16,
    Q.Q8_0: sum(k * k for k in range(-127, 128)) / 256,
}
_NORMAL_SEED = 0x5EED  # the fixed samples behind random_floats (the per-tensor seed picks among them)


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


# ---- random weights, written in their stored encoding ------------------------------------


def file_type(qtype: GGMLQuantizationType) -> int:
    """``general.file_type`` for a model whose matrices are ``qtype``; ValueError if none fits."""
    try:
        return int(FILE_TYPES[qtype])
    except KeyError:
        raise ValueError(f"no llama.cpp file type for {qtype.name}") from None


def _random_bytes(bits: np.random.BitGenerator, nbytes: int) -> np.ndarray:
    """``nbytes`` random bytes (uint8, writable, contiguous), 8 at a time from the raw stream."""
    raw: np.ndarray = bits.random_raw(-(-nbytes // 8))
    return raw.view(np.uint8)[:nbytes]


@functools.lru_cache(maxsize=16)
def _scale_table(qtype: GGMLQuantizationType, std: float) -> np.ndarray:
    """256 block scales (f16 bits, little-endian) for random ``qtype`` blocks: magnitudes spread
    over 0.5x..1.5x, so blocks differ as real ones do, normalised so values have RMS ``std``.
    Q4_0 scales come in +/- pairs (ggml's quantizer gives negative d too), which cancels the
    -0.5 mean of its codes; Q8_0 scales are positive like ggml's."""
    mags = np.repeat(np.linspace(0.5, 1.5, 128), 2)
    signs = np.tile([1.0, -1.0], 128) if qtype == Q.Q4_0 else np.ones(256)
    d0 = std / np.sqrt(_CODE_MS[qtype] * np.mean(mags**2))
    table = (d0 * mags * signs).astype("<f2").view("<u2")
    table.flags.writeable = False
    return table


def random_blocks(
    bits: np.random.BitGenerator, n_blocks: int, qtype: GGMLQuantizationType, std: float
) -> np.ndarray:
    """``n_blocks`` valid random ``qtype`` blocks, uint8 of shape (n_blocks, block bytes): random
    codes and one f16 scale per block, values of mean 0 and RMS ``std``. Q4_0 and Q8_0 only."""
    size = BLOCK_BYTES.get(qtype)
    if size is None:
        raise ValueError(f"no random blocks for {qtype.name}")
    blocks = _random_bytes(bits, n_blocks * size).reshape(n_blocks, size)
    pick = blocks[:, 0].copy()  # a random byte per block chooses its scale
    if qtype == Q.Q8_0:
        codes = blocks.view(np.int8)
        codes[codes == -128] = 0
    blocks.view("<u2")[:, 0] = _scale_table(qtype, std)[pick]
    return blocks


@functools.lru_cache(maxsize=16)
def _normal_table(qtype: GGMLQuantizationType, std: float) -> np.ndarray:
    """65,536 normal samples of standard deviation ``std`` stored as ``qtype`` (F32, F16, BF16)."""
    x = np.random.default_rng(_NORMAL_SEED).standard_normal(1 << 16)
    x = ((x - x.mean()) * (std / x.std())).astype(np.float32)
    table = encode(x, "F32", qtype)
    table.flags.writeable = False
    return table


def random_floats(
    bits: np.random.BitGenerator, n: int, qtype: GGMLQuantizationType, std: float
) -> np.ndarray:
    """``n`` normal values of standard deviation ``std`` stored as ``qtype`` (F32, F16, or BF16 as
    raw uint16), picked from a fixed table by random 16-bit indices."""
    if qtype not in (Q.F32, Q.F16, Q.BF16):
        raise ValueError(f"no random floats for {qtype.name}")
    index = _random_bytes(bits, 2 * n).view("<u2")
    out: np.ndarray = _normal_table(qtype, std).take(index)
    return out
