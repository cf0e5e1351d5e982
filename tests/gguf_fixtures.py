"""Helpers for GGUF tests: tiny synthetic models and deliberately broken heads.

Broken heads are made from a good head by rewriting its metadata or tensors through the same
writer lanebench uses, so each differs from the good one in exactly one way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType

from lanebench.gguf.reader import open_gguf
from lanebench.gguf.translate import copy_plans, field_kvs
from lanebench.gguf.writer import KV, TensorPlan, write_gguf

KvEdit = Callable[[list[KV]], list[KV]]


def rewrite(
    src: Path,
    dst: Path,
    *,
    arch: str | None = None,
    kv_edit: KvEdit | None = None,
    drop: tuple[str, ...] = (),
    replace_tensor: TensorPlan | None = None,
) -> Path:
    """Copy ``src`` to ``dst`` changing the architecture (and its key prefix), keys, tensors."""
    g = open_gguf(src)
    kvs = field_kvs(g)
    if arch is not None:
        old = g.arch + "."
        kvs = [
            replace(kv, key=arch + "." + kv.key[len(old) :]) if kv.key.startswith(old) else kv for kv in kvs
        ]
    if kv_edit is not None:
        kvs = kv_edit(kvs)
    plans = copy_plans(g, lambda n: None if n in drop else n)
    if replace_tensor is not None:
        plans = [replace_tensor if p.name == replace_tensor.name else p for p in plans]
    write_gguf(dst, arch or g.arch, kvs, plans)
    return dst


def set_key(key: str, value: KV | None) -> KvEdit:
    """A kv_edit that replaces (or with None removes) one key."""

    def edit(kvs: list[KV]) -> list[KV]:
        out = [kv for kv in kvs if kv.key != key]
        return out + ([value] if value is not None else [])

    return edit


def edit_tokens(fn: Callable[[list[str]], list[str]]) -> KvEdit:
    """A kv_edit that transforms the token texts."""

    def edit(kvs: list[KV]) -> list[KV]:
        return [
            replace(kv, value=fn(list(kv.value))) if kv.key == "tokenizer.ggml.tokens" else kv for kv in kvs
        ]

    return edit


def f32_tensor(name: str, shape: tuple[int, ...]) -> TensorPlan:
    """A float32 tensor of ones with numpy-order ``shape``."""
    data = np.ones(shape, dtype=np.float32)
    return TensorPlan(name, shape, GGMLQuantizationType.F32, lambda: iter([data]))


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``src``'s bytes."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def tokenizer_gguf(path: Path, n: int = 512) -> Path:
    """A GGUF holding only a small made-up SPM vocabulary of ``n`` tokens (no tensors)."""
    from gguf import GGUFValueType

    from lanebench.gguf.writer import array, boolean, string, u32

    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"tok{i}" for i in range(5, n)]
    kvs = [
        string("tokenizer.ggml.model", "llama"),
        array("tokenizer.ggml.tokens", tokens, GGUFValueType.STRING),
        array("tokenizer.ggml.scores", [0.0] * n, GGUFValueType.FLOAT32),
        array("tokenizer.ggml.token_type", [3] * 5 + [1] * (n - 5), GGUFValueType.INT32),
        u32("tokenizer.ggml.bos_token_id", 2),
        u32("tokenizer.ggml.eos_token_id", 1),
        boolean("tokenizer.ggml.add_bos_token", True),
        boolean("tokenizer.ggml.add_eos_token", False),
    ]
    write_gguf(path, "llama", kvs, [])
    return path


def small_set(d: Path, n_vocab: int = 512) -> dict[str, Path]:
    """A tiny main GGUF, an HF assistant and its upstream head, all on a small vocabulary."""
    from lanebench.gguf import shapes
    from lanebench.gguf.convert import ConvertOptions, convert_head
    from lanebench.gguf.synth import synth_assistant, synth_main

    main_shape, head_shape = shapes.preset("tiny")
    main_shape = replace(main_shape, vocab=n_vocab)
    tok = tokenizer_gguf(d / "tok.gguf", n_vocab)
    synth_main(d / "main.gguf", main_shape, tok)
    synth_assistant(d / "hf", main_shape, head_shape, "Gemma4AssistantForCausalLM")
    convert_head(ConvertOptions(d / "hf", d / "main.gguf", d / "head.gguf"))
    return {"tok": tok, "main": d / "main.gguf", "hf": d / "hf", "head": d / "head.gguf"}
