"""Convert a Hugging Face assistant checkpoint into a GGUF head for a given main model.

One tensor at a time, in row chunks: peak memory stays near the largest tensor. Weights are
not edited; only their type changes (and the masked-embedding centroids are left out of
upstream heads, as upstream's converter does). The vocabulary is copied from the main model,
and the file records where it came from (``lanebench.source.*``). The head written is checked
with the rules ``check`` applies to a head alone before it takes the output's name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType

from lanebench import __version__
from lanebench.config.inputs import show
from lanebench.errors import BadInput
from lanebench.gguf import heads, hf
from lanebench.gguf import keys as K
from lanebench.gguf.check import written_head_problems
from lanebench.gguf.fill import constant, rope_freqs
from lanebench.gguf.heads import HeadDialect, HeadParams
from lanebench.gguf.quant import compare, encode_chunks, storage_type
from lanebench.gguf.reader import GgufFile, open_gguf
from lanebench.gguf.st_io import Checkpoint
from lanebench.gguf.tokenizer import tokenizer_kvs
from lanebench.gguf.writer import KV, TensorPlan, refuse_existing, string, u32, write_gguf

Q = GGMLQuantizationType
_FLOAT_DTYPES = ("BF16", "F16", "F32")
_INT_DTYPES = ("I32", "I64")


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """What ``convert-head`` was asked to do."""

    hf_dir: Path
    main: Path
    out: Path
    qtype: GGMLQuantizationType = Q.Q8_0
    dialect: str = "upstream"  # a registered head dialect's name
    force: bool = False

    @property
    def head_dialect(self) -> HeadDialect:
        return heads.dialect(self.dialect, "--dialect")


@dataclass(slots=True)
class Mapped:
    """One source tensor and where it goes."""

    hf_name: str
    gguf_name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType


@dataclass(slots=True)
class ConvertResult:
    """What was written: file, bytes, source bytes, tensors, and what was left out."""

    out: Path
    out_bytes: int
    source_bytes: int
    largest_source_tensor: int
    mapped: list[Mapped]
    skipped: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)


def check_main(main: GgufFile, hd: HeadDialect) -> None:
    """BadInput unless ``main`` is a model the head's dialect drafts for (gemma4)."""
    if main.arch != hd.target_arch:
        raise BadInput(
            f"--main {main.path}: architecture is {main.arch!r}, expected {hd.target_arch!r} "
            "(Gemma 4 assistant heads draft for gemma4 models)"
        )


def plan_tensors(
    ck: Checkpoint, spec: hf.HfHeadSpec, hp: HeadParams, cfg: dict[str, Any], opts: ConvertOptions
) -> tuple[list[Mapped], list[str]]:
    """Map every source tensor; BadInput for a missing, misshapen, mistyped or unknown tensor."""
    expected = spec.tensors(hp, cfg)
    for name, shape in expected.items():
        if name not in ck.tensors:
            raise BadInput(
                f"{opts.hf_dir}: tensor {name} is missing (config.json implies it, shape {list(shape)})"
            )
        got = ck.tensors[name]
        if tuple(got.shape) != shape:
            raise BadInput(
                f"{opts.hf_dir}: tensor {name} has shape {list(got.shape)}, config.json implies {list(shape)}"
            )
        kinds = _INT_DTYPES if name in hf.INTEGER_TENSORS else _FLOAT_DTYPES
        if got.dtype not in kinds:
            raise BadInput(f"{got.file}: tensor {name} has dtype {got.dtype}, expected {' or '.join(kinds)}")
    hd = opts.head_dialect
    mapped, skipped = [], []
    for name in ck.tensors:
        if name not in expected:
            if name == "lm_head.weight" and hf.tie_word_embeddings(cfg):
                skipped.append(f"{name} (tied to model.embed_tokens.weight)")
                continue
            raise BadInput(f"{opts.hf_dir}: tensor {name} is not part of {spec.architecture}")
        upstream = spec.gguf_name(name) or ""
        if upstream in hd.convert_skips:
            skipped.append(f"{name} ({hd.convert_skips[upstream]})")
            continue
        gname = hd.tensor_name(upstream)
        shape = expected[name]
        qt = Q.I32 if name in hf.INTEGER_TENSORS else storage_type(shape, opts.qtype)
        mapped.append(Mapped(name, gname, shape, qt))
    return mapped, skipped


def _source_kvs(
    opts: ConvertOptions, cfg_bytes: bytes, ck: Checkpoint, arch: str, main: GgufFile
) -> list[KV]:
    files = sorted({t.file for t in ck.tensors.values()})
    return [
        string(K.TYPE.template, "model"),
        string(K.NAME.template, f"{opts.hf_dir.name} ({opts.dialect} head)"),
        u32(K.QUANTIZATION_VERSION.template, 2),
        string("lanebench.source.path", str(opts.hf_dir.resolve())),
        string("lanebench.source.architecture", arch),
        string("lanebench.source.config_sha256", hashlib.sha256(cfg_bytes).hexdigest()),
        string("lanebench.source.files", ", ".join(f"{f.name}:{f.stat().st_size}" for f in files)),
        string("lanebench.main.path", str(opts.main.resolve())),
        string("lanebench.main.vocab_sha256_16", main.vocab_hash(0)),
        string("lanebench.converter", f"lanebench {__version__} convert-head --type {opts.qtype.name}"),
    ]


def convert_head(
    opts: ConvertOptions, on_tensor: Callable[[TensorPlan], None] | None = None
) -> ConvertResult:
    """Convert ``opts.hf_dir`` into ``opts.out``; BadInput with one line on any bad input."""
    hd = opts.head_dialect
    refuse_existing(opts.out, opts.force)
    cfg, cfg_bytes = hf.read_config(opts.hf_dir), hf.config_bytes(opts.hf_dir)
    spec = hf.spec_for(cfg, str(opts.hf_dir / hf.CONFIG))
    hp = spec.params(cfg)
    main = open_gguf(opts.main, "--main")
    check_main(main, hd)
    _check_fit(hp, cfg, main)
    ck = Checkpoint(opts.hf_dir)
    try:
        mapped, skipped = plan_tensors(ck, spec, hp, cfg, opts)
        plans = [_plan(ck, m) for m in mapped]
        generated = []
        if not all(hp.is_swa):
            rf = rope_freqs(hp.head_dim_full, hf.partial_rotary_full(cfg))
            plans.append(TensorPlan("rope_freqs.weight", rf.shape, Q.F32, constant(rf)))
            generated.append("rope_freqs.weight (proportional RoPE factors from config.json)")
        kvs = [
            *_source_kvs(opts, cfg_bytes, ck, spec.architecture, main),
            *hd.kvs(hp),
            *tokenizer_kvs(main),
        ]
        size = write_gguf(opts.out, hd.arch, kvs, plans, on_tensor=on_tensor, check=written_head_problems)
    finally:
        ck.close()
    src = [ck.tensors[m.hf_name].nbytes for m in mapped]
    return ConvertResult(opts.out, size, sum(src), max(src, default=0), mapped, skipped, generated)


def _plan(ck: Checkpoint, m: Mapped) -> TensorPlan:
    def produce() -> Any:
        t = ck.tensors[m.hf_name]
        yield from encode_chunks(ck.raw(m.hf_name), t.dtype, m.qtype)
        ck.release(m.hf_name)

    return TensorPlan(m.gguf_name, m.shape, m.qtype, produce)


def _check_fit(hp: HeadParams, cfg: dict[str, Any], main: GgufFile) -> None:
    """Refuse a head that cannot serve ``main``: backbone width and vocabulary size."""
    n_embd = main.meta.get(K.EMBEDDING_LENGTH, 0)
    if hp.backbone != n_embd:
        raise BadInput(
            f"config.json: backbone_hidden_size is {hp.backbone}, but --main {main.path.name} has "
            f"embedding_length {show(n_embd)} (this head was trained for another model size)"
        )
    n_vocab = main.n_tokens
    if hf.vocab_size(cfg) != n_vocab:
        raise BadInput(
            f"config.json: text_config.vocab_size is {hf.vocab_size(cfg)}, but --main "
            f"{main.path.name} has {n_vocab} tokens"
        )


# ---- verify ----------------------------------------------------------------------------


@dataclass(slots=True)
class TypeError_:
    """Worst error seen for one stored type."""

    qtype: str
    tensors: int = 0
    max_abs: float = 0.0
    max_ratio: float = 0.0
    worst_tensor: str = ""


def verify(hf_dir: Path, out: Path, mapped: list[Mapped]) -> dict[str, TypeError_]:
    """Dequantise every written tensor and compare it with its source; worst error per type.

    ``max_ratio`` is error / the type's bound (≤ 1 passes; BF16 from BF16 must be exact).
    """
    written = open_gguf(out, "output")
    ck = Checkpoint(hf_dir)
    stats: dict[str, TypeError_] = {}
    try:
        for m in mapped:
            t = ck.tensors[m.hf_name]
            s = stats.setdefault(m.qtype.name, TypeError_(m.qtype.name))
            if m.qtype == Q.I32:
                equal = np.array_equal(
                    ck.raw(m.hf_name).astype(np.int64), written.tensor_data(m.gguf_name).view(np.int32)
                )
                err, ratio = (0.0, 0.0) if equal else (float("inf"), float("inf"))
            else:
                err, ratio = compare(ck.raw(m.hf_name), t.dtype, written.tensor_data(m.gguf_name), m.qtype)
            ck.release(m.hf_name)
            s.tensors += 1
            if ratio >= s.max_ratio:
                s.max_ratio, s.worst_tensor = ratio, m.gguf_name
            s.max_abs = max(s.max_abs, err)
    finally:
        ck.close()
    return stats
