"""Synthesis at disk speed: random valid blocks, plausible routers and norms, file type, streaming."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import LlamaFileType
from gguf.quants import dequantize
from tests.gguf_fixtures import tokenizer_gguf

from lanebench.gguf import fill, shapes
from lanebench.gguf.quant import BLOCK_BYTES, random_blocks, random_floats
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.synth import synth_main
from lanebench.gguf.writer import TensorPlan, partial_path, write_gguf

STD = fill.STD


def _bits(seed: int = 7) -> np.random.BitGenerator:
    return np.random.default_rng(seed).bit_generator


def _values(raw: np.ndarray, qtype: Q) -> np.ndarray:
    return dequantize(raw.reshape(-1), qtype).astype(np.float64).reshape(-1)


# ---- blocks and floats -------------------------------------------------------------------


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q8_0])
def test_random_blocks_dequantise_inside_the_types_range(qtype: Q) -> None:
    blocks = random_blocks(_bits(), 20_000, qtype, STD)
    assert blocks.dtype == np.uint8 and blocks.shape == (20_000, BLOCK_BYTES[qtype])
    d = blocks[:, :2].copy().view("<f2").astype(np.float64).reshape(-1)
    assert np.isfinite(d).all() and (d != 0).all()
    x = _values(blocks, qtype).reshape(20_000, 32)
    assert np.isfinite(x).all()
    if qtype == Q.Q8_0:
        codes = blocks[:, 2:].view(np.int8)
        assert codes.min() >= -127 and codes.max() <= 127  # what ggml's own quantizer writes
        assert (d > 0).all()
        assert (np.abs(x) <= 127 * d[:, None] + 1e-12).all()
    else:
        assert (d > 0).any() and (d < 0).any()  # +/- scales, as ggml's Q4_0 quantizer gives
        assert (np.abs(x) <= 8 * np.abs(d)[:, None] + 1e-12).all()
    assert abs(x.mean()) < 0.02 * STD
    assert x.std() == pytest.approx(STD, rel=0.03)


@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16])
def test_random_floats_are_normal_noise_of_the_asked_size(qtype: Q) -> None:
    raw = random_floats(_bits(), 200_000, qtype, STD)
    assert raw.shape == (200_000,)
    if qtype == Q.BF16:
        x = (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    else:
        x = raw.astype(np.float64)
    assert np.isfinite(x).all()
    assert abs(x.mean()) < 0.02 * STD
    assert x.std() == pytest.approx(STD, rel=0.03)
    assert len(np.unique(x)) > 1000  # not a handful of values


def test_random_weights_come_in_bounded_chunks_and_are_seeded() -> None:
    shape = (3, 1000, 256)
    chunks = list(fill.random_weights("blk.0.ffn_up.weight", shape, Q.Q4_0, seed=1)())
    assert sum(c.nbytes for c in chunks) == 3 * 1000 * 256 // 32 * 18
    again = list(fill.random_weights("blk.0.ffn_up.weight", shape, Q.Q4_0, seed=1)())
    other = list(fill.random_weights("blk.0.ffn_up.weight", shape, Q.Q4_0, seed=2)())
    assert all(np.array_equal(a, b) for a, b in zip(chunks, again, strict=True))
    assert not np.array_equal(chunks[0], other[0])
    big = fill.random_weights("x", (1 << 16, 1 << 12), Q.Q8_0, seed=0)
    first = next(iter(big()))
    assert first.nbytes <= fill.CHUNK_OUT  # a 9 GB tensor never sits in memory whole


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q8_0, Q.F16, Q.BF16, Q.F32])
def test_random_weights_do_not_depend_on_the_thread_count(qtype: Q, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill, "CHUNK_OUT", 4096)

    def whole(workers: int) -> bytes:
        monkeypatch.setattr(fill, "WORKERS", workers)
        chunks = list(fill.random_weights("w", (200, 320), qtype, seed=5)())
        assert len(chunks) > 4 and all(c.nbytes <= 4096 for c in chunks)
        return b"".join(c.tobytes() for c in chunks)

    assert whole(1) == whole(3)


def test_closing_a_parallel_producer_early_stops_its_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill, "CHUNK_OUT", 4096)
    monkeypatch.setattr(fill, "WORKERS", 3)
    before = threading.active_count()
    chunks = fill.random_weights("w", (1000, 320), Q.Q8_0, seed=5)()
    next(chunks)
    assert threading.active_count() > before
    chunks.close()  # type: ignore[attr-defined]
    assert threading.active_count() == before


def test_random_weights_refuse_rows_that_are_not_whole_blocks() -> None:
    with pytest.raises(ValueError, match="blocks"):
        fill.random_weights("x", (4, 48), Q.Q8_0, seed=0)


# ---- whole models ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tokenizer_gguf(tmp_path_factory.mktemp("tok") / "tok.gguf", 512)


@pytest.mark.parametrize(
    ("name", "qtype", "ftype"),
    [
        ("q4_0", Q.Q4_0, LlamaFileType.MOSTLY_Q4_0),
        ("q8_0", Q.Q8_0, LlamaFileType.MOSTLY_Q8_0),
        ("f16", Q.F16, LlamaFileType.MOSTLY_F16),
        ("bf16", Q.BF16, LlamaFileType.MOSTLY_BF16),
        ("f32", Q.F32, LlamaFileType.ALL_F32),
    ],
)
def test_synth_main_writes_its_file_type_and_plausible_values(
    tmp_path: Path, tok: Path, name: str, qtype: Q, ftype: LlamaFileType
) -> None:
    main, _ = shapes.preset("tiny")
    out = tmp_path / f"{name}.gguf"
    synth_main(out, main, tok, qtype)
    g = open_gguf(out)
    assert g.get("general.file_type") == int(ftype)  # llama-bench's label ("Q4_0", not "all F32")
    assert g.tensors["blk.0.ffn_up.weight"].type_name == qtype.name
    up = dequantize(g.tensor_data("blk.0.ffn_up.weight"), qtype).astype(np.float64)
    assert np.isfinite(up).all() and up.std() == pytest.approx(STD, rel=0.1)
    norm = dequantize(g.tensor_data("blk.0.attn_norm.weight"), Q.F32)
    assert g.tensors["blk.0.attn_norm.weight"].type_name == "F32"
    assert np.abs(norm - 1).max() < 0.1  # norms near 1: activations keep their size


def test_synth_main_is_reproducible(tmp_path: Path, tok: Path) -> None:
    main, _ = shapes.preset("tiny")
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    synth_main(a, main, tok, Q.Q4_0, seed=3)
    synth_main(b, main, tok, Q.Q4_0, seed=3)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q8_0])
def test_a_synthesized_router_spreads_tokens_over_experts(tmp_path: Path, tok: Path, qtype: Q) -> None:
    main, _ = shapes.preset("tiny-moe")
    main = replace(main, hidden=256, n_expert=32, n_expert_used=4)
    out = tmp_path / "moe.gguf"
    synth_main(out, main, tok, qtype)
    g = open_gguf(out)
    h, e, k = main.hidden, main.n_expert, main.n_expert_used
    for layer in range(main.n_layer):
        w = dequantize(g.tensor_data(f"blk.{layer}.ffn_gate_inp.weight"), qtype).reshape(e, h)
        scale = dequantize(g.tensor_data(f"blk.{layer}.ffn_gate_inp.scale"), Q.F32).reshape(h)
        norms = np.linalg.norm(w, axis=1)
        assert norms.min() > 0 and norms.std() > 0  # no dead or identical rows
        hidden = np.random.default_rng(layer).standard_normal((2048, h))
        logits = (hidden * scale) @ w.T
        top = np.argsort(-logits, axis=1)[:, :k]
        usage = np.bincount(top.reshape(-1), minlength=e) / top.size
        assert (usage > 0).sum() >= 0.9 * e  # most experts get tokens
        assert usage.max() < 3.0 / e  # none takes more than 3x its fair share
        assert len({tuple(sorted(r)) for r in top[:256]}) > 200  # tokens route differently


# ---- the writer streams and cleans up -----------------------------------------------------


def test_a_failing_producer_leaves_no_file_and_no_thread(tmp_path: Path) -> None:
    def produce() -> Iterator[np.ndarray]:
        yield np.zeros(64, dtype=np.float32)
        raise RuntimeError("source went away")

    plans = [
        TensorPlan("a", (64, 64), Q.F32, lambda: iter([np.zeros((64, 64), dtype=np.float32)])),
        TensorPlan("b", (2, 64), Q.F32, produce),
    ]
    before = threading.active_count()
    out = tmp_path / "x.gguf"
    with pytest.raises(RuntimeError, match="source went away"):
        write_gguf(out, "llama", [], plans)
    assert not out.exists() and not partial_path(out).exists()
    assert threading.active_count() == before


def test_a_failing_write_stops_the_producer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lanebench.gguf import writer

    produced: list[int] = []

    def endless() -> Iterator[np.ndarray]:
        for i in range(10_000):
            produced.append(i)
            yield np.zeros(1024, dtype=np.uint8)

    def full(fout: object, buf: np.ndarray) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_chunk", full)
    before = threading.active_count()
    with pytest.raises(Exception, match="No space left"):
        write_gguf(tmp_path / "x.gguf", "llama", [], [TensorPlan("a", (10_000, 1024), Q.I8, endless)])
    assert threading.active_count() == before
    assert len(produced) <= 2 + writer.PREFETCH + 1  # stopped, not run to the end


def test_convert_does_not_import_synth() -> None:
    code = "import sys, lanebench.gguf.convert; print('lanebench.gguf.synth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
