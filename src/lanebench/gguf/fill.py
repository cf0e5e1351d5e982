"""Generated tensor contents: constants, RoPE factors and seeded random weights.

Shared by ``convert`` (tensors a checkpoint lacks, such as proportional-RoPE factors) and
``synth`` (whole random-weight models). A producer yields a tensor's stored bytes in chunks of
about ``CHUNK_OUT`` bytes, so writing a model of any size holds a few chunks in memory.

Random matrices come out in their stored encoding directly (``quant.random_blocks`` /
``quant.random_floats``), never through float32 for quantized types: values of mean 0 and
standard deviation ``STD``, as an initialiser would give. Norms and scales are float vectors
near 1, so activations keep their size layer after layer and a router's rows, independent
random vectors, send different tokens to different experts.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from gguf import GGMLQuantizationType

from lanebench.gguf.quant import BLOCK, BLOCK_BYTES, CHUNK_BYTES, encode, random_blocks, random_floats

Q = GGMLQuantizationType
Producer = Callable[[], Iterator[np.ndarray]]
STD = 0.02  # weights
NEAR_ONE_SPREAD = 0.01  # norms and scales: 1 + 0.01 * N(0, 1)
CHUNK_OUT = 16 << 20  # stored bytes per produced chunk of a random matrix (16 MiB measured best)
_ITEMSIZE = {Q.F32: 4, Q.F16: 2, Q.BF16: 2}


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# threads making one tensor's chunks: one core stays free for the writer and the kernel's copies
WORKERS = max(1, min(4, _cpus() - 1))


def constant(data: np.ndarray) -> Producer:
    """A producer that yields ``data`` once (small generated tensors)."""
    return lambda: iter([data])


def rope_freqs(head_dim_full: int, partial: float) -> np.ndarray:
    """Proportional-RoPE freq factors: 1 for rotated pairs, 1e30 for the rest (``head_dim_full
    // 2`` values; ``partial`` in [0, 1] is the rotated share of the head)."""
    if not 0.0 <= partial <= 1.0:
        raise ValueError(f"partial rotary factor {partial} is outside [0, 1]")
    out = np.full(head_dim_full // 2, 1e30, dtype=np.float32)
    out[: int(head_dim_full * partial / 2)] = 1.0
    return out


def generator(name: str, seed: int) -> np.random.Generator:
    """The random stream of tensor ``name`` under ``seed`` (independent of write order)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def is_near_one(name: str, shape: tuple[int, ...]) -> bool:
    """Vectors (norms, per-channel scales) and named scalars are near 1, not small noise."""
    return len(shape) == 1 or name.endswith(("layer_scalar", ".scale"))


def near_one(name: str, shape: tuple[int, ...], seed: int, qtype: GGMLQuantizationType = Q.F32) -> Producer:
    """Values 1 + 0.01 * N(0, 1) stored as ``qtype`` (through float32: these tensors are small)."""

    def produce() -> Iterator[np.ndarray]:
        rng = generator(name, seed)
        rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
        cols = shape[-1]
        step = max(1, CHUNK_BYTES // (cols * 4))
        for i in range(0, rows, step):
            x = rng.standard_normal((min(step, rows - i), cols), dtype=np.float32)
            yield encode(1.0 + NEAR_ONE_SPREAD * x, "F32", qtype)

    return produce


def random_weights(
    name: str, shape: tuple[int, ...], qtype: GGMLQuantizationType, seed: int, std: float = STD
) -> Producer:
    """Random values of mean 0 and standard deviation ``std``, stored as ``qtype`` (Q4_0 and
    Q8_0 as random valid blocks, F32/F16/BF16 from a normal table), in chunks of ``CHUNK_OUT``.

    Each chunk has its own random stream (seed, name, offset), so ``WORKERS`` threads make
    chunks side by side (numpy releases the GIL) and the bytes do not depend on how many."""
    n = int(np.prod(shape, dtype=np.int64))
    if qtype in BLOCK_BYTES:
        if shape[-1] % BLOCK:
            raise ValueError(f"tensor {name}: rows of {shape[-1]} are not whole {qtype.name} blocks")
        total, per = n // BLOCK, max(1, CHUNK_OUT // BLOCK_BYTES[qtype])
    elif qtype in _ITEMSIZE:
        total, per = n, max(1, CHUNK_OUT // _ITEMSIZE[qtype])
    else:
        raise ValueError(f"tensor {name}: no random fill for {qtype.name}")
    make = random_blocks if qtype in BLOCK_BYTES else random_floats
    key = zlib.crc32(name.encode())

    def chunk(start: int) -> np.ndarray:
        bits = np.random.default_rng([seed, key, start]).bit_generator
        return make(bits, min(per, total - start), qtype, std)

    def produce() -> Iterator[np.ndarray]:
        starts = range(0, total, per)
        if WORKERS <= 1 or len(starts) <= 1:
            yield from map(chunk, starts)
            return
        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="lanebench-fill")
        pending: deque[Future[np.ndarray]] = deque()
        try:
            for start in starts:
                pending.append(pool.submit(chunk, start))
                if len(pending) >= WORKERS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return produce


def tensor_fill(name: str, shape: tuple[int, ...], qtype: GGMLQuantizationType, seed: int) -> Producer:
    """The producer ``synth`` uses for a weight: near 1 for norms and scales, else random."""
    if is_near_one(name, shape):
        return near_one(name, shape, seed, qtype)
    return random_weights(name, shape, qtype, seed)
