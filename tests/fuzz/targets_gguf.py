"""Fuzz targets for lanebench's GGUF tooling: the reader, ``gguf inspect``, ``gguf check``
(a mutated head, draft or main model next to valid files) and ``gguf translate``.

Each target calls what the CLI calls and renders what the CLI prints (into a string, through
rich, so that markup in a file's strings is exercised). Seeds are made in-process: a tiny
gemma4 main model on a 32-token vocabulary, its upstream and Atomic heads, the same head
big-endian, the tokenizer alone, and a file holding every GGUF value type.
"""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType
from rich.console import Console

from lanebench.cli.gguf_cmd import render_check, render_inspect, text
from lanebench.engines.llamacpp.dialect import Dialect
from lanebench.errors import BadInput
from lanebench.gguf.check import check_draft
from lanebench.gguf.convert import ConvertOptions, convert_head
from lanebench.gguf.heads import rename_tensor
from lanebench.gguf.inspect import inspect_gguf, kind_of
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.shapes import FULL, SWA, HeadShape, MainShape
from lanebench.gguf.synth import synth_assistant, synth_main
from lanebench.gguf.tokenizer import vocab_of
from lanebench.gguf.translate import translate
from lanebench.gguf.writer import KV, TensorPlan, array, boolean, f32, string, u32, write_gguf
from tests.fuzz.gguf_codec import decode, encode
from tests.fuzz.harness import Target
from tests.gguf_fixtures import tokenizer_gguf

N_VOCAB = 32
MAIN = MainShape("fuzz-gemma4", 32, (SWA, FULL), 1, 1, 1, 8, 16, 32, sliding_window=16, vocab=N_VOCAB)
HEAD = HeadShape(hidden=16, layer_types=(SWA, FULL), ffn=32)
T = GGUFValueType
Q = GGMLQuantizationType


def _dialect(flag: str, spec_types: tuple[str, ...]) -> Dialect:
    return Dialect(
        "version: fuzz (build 1)", 1, None, frozenset({flag, "--spec-type", "--mtp-head"}), spec_types
    )


DIALECTS: tuple[Dialect | None, ...] = (
    _dialect("--spec-draft-n-max", ("draft-simple", "draft-mtp")),
    _dialect("--draft-block-size", ("mtp",)),
    None,
)


@cache
def fixture() -> Path:
    """A folder of valid files, made once per process (workers inherit it)."""
    d = Path(tempfile.mkdtemp(prefix="lanebench-fuzz-gguf-"))
    atexit.register(shutil.rmtree, d, True)
    tok = tokenizer_gguf(d / "tok.gguf", N_VOCAB)
    synth_main(d / "main.gguf", MAIN, tok)
    synth_assistant(d / "hf", MAIN, HEAD, "Gemma4AssistantForCausalLM")
    convert_head(ConvertOptions(d / "hf", d / "main.gguf", d / "head.gguf"))
    _normalize(d / "head.gguf", str(d).encode())
    translate(d / "head.gguf", "atomic", d / "head-atomic.gguf")
    doc = decode((d / "head.gguf").read_bytes())
    assert doc is not None
    doc.byte_order = ">"
    (d / "head-be.gguf").write_bytes(bytes(encode(doc).data))
    _every_type(d / "types.gguf")
    return d


def _normalize(path: Path, folder: bytes) -> None:
    """The fixture's folder (recorded in the head's provenance keys) replaced by a constant,
    so that the seeds, and with them every input of a run seed, are the same on every run."""
    doc = decode(path.read_bytes())
    assert doc is not None
    for kv in doc.kvs:
        if isinstance(kv.value, bytes):
            kv.value = kv.value.replace(folder, b"/fixture")
    path.write_bytes(bytes(encode(doc).data))


def _every_type(path: Path) -> None:
    """A valid file with every value type, empty arrays, markup in strings, a 64-byte alignment."""
    kvs = [
        KV("general.alignment", 64, T.UINT32),
        string("general.name", "[bold]tiny[/] \\[/] [link=x]y"),
        *(KV(f"x.{t.name.lower()}", 1, t) for t in (T.UINT8, T.INT8, T.UINT16, T.INT16, T.INT32, T.INT64)),
        KV("x.uint64", 2**64 - 1, T.UINT64),
        KV("x.float64", 1e300, T.FLOAT64),
        f32("x.float32", float("nan")),
        boolean("x.bool", True),
        array("x.empty", [], T.INT32),
        array("x.strings", ["a", "", "[/]", "é"], T.STRING),
        array("x.floats", [0.5, float("inf")], T.FLOAT32),
        u32("llama.block_count", 2),
        array("llama.attention.head_count_kv", [1, 2], T.UINT32),
    ]
    data = np.ones((2, 32), dtype=np.float32)
    plans = [
        TensorPlan("a.weight", (2, 32), Q.F32, lambda: iter([data])),
        TensorPlan("b.weight", (2, 32), Q.F16, lambda: iter([data.astype(np.float16)])),
        TensorPlan("c.weight", (2,), Q.I32, lambda: iter([np.arange(2, dtype=np.int32)])),
    ]
    write_gguf(path, "llama", kvs, plans)


def _files(*names: str) -> list[bytes]:
    return [(fixture() / n).read_bytes() for n in names]


ALL = ("head.gguf", "head-atomic.gguf", "head-be.gguf", "main.gguf", "tok.gguf", "types.gguf")
HEADS = ("head.gguf", "head-atomic.gguf", "head-be.gguf")


def _console() -> Console:
    return Console(file=io.StringIO(), width=200)


def run_read(path: Path) -> None:
    """The reader entry point and every accessor the package uses."""
    g = open_gguf(path, "GGUF")
    for key in g.fields:
        g.get(key)
        g.field_type(key)
        g.packed_value(key)
    for name in g.tensors:
        g.tensor_data(name)
    g.tokens()
    vocab_of(g)
    kind_of(g)


def run_inspect(path: Path) -> None:
    """``lanebench gguf inspect FILE`` and ``--json``."""
    info = inspect_gguf(path)
    json.dumps(info, indent=2, default=str)
    render_inspect(info, _console())


def _check(main: Path, draft: Path, kind: str) -> None:
    """``lanebench gguf check --main MAIN --head/--draft DRAFT`` against each kind of build."""
    open_gguf(main, "main model")
    for d in DIALECTS:
        problems = check_draft(main, draft, kind, d)
        json.dumps({"ok": not problems, "problems": problems})
        render_check(problems, kind, f"build: {d.version_text if d else 'unknown'}", _console())


def run_check_head(path: Path) -> None:
    _check(fixture() / "main.gguf", path, "mtp")


def run_check_draft(path: Path) -> None:
    _check(fixture() / "main.gguf", path, "model")


def run_check_main(path: Path) -> None:
    _check(path, fixture() / "head.gguf", "mtp")
    _check(path, fixture() / "main.gguf", "model")


def run_translate(path: Path) -> None:
    """``lanebench gguf translate HEAD --to X -o OUT``, then back: every tensor byte survives."""
    out, back = path.with_name("out.gguf"), path.with_name("back.gguf")
    for to in ("atomic", "upstream"):
        try:
            src, size = translate(path, to, out, force=True)
        except BadInput as exc:
            if "already in the" in str(exc):
                continue
            raise
        _console().print(text(f"{path} ({src}) -> {out} ({to}), {size:,} bytes"), highlight=False)
        translate(out, src, back, force=True)
        _same_tensors(path, back, src, to)
        return


def _same_tensors(a_path: Path, b_path: Path, src: str, to: str) -> None:
    a, b = open_gguf(a_path), open_gguf(b_path)
    assert len(a.tensors) == len(b.tensors), "translate lost or added tensors"
    for name, info in a.tensors.items():
        back = rename_tensor(rename_tensor(name, src, to), to, src)
        got = b.tensors[back]
        assert (got.shape, got.type_name) == (info.shape, info.type_name), f"tensor {name} changed"
        assert np.array_equal(a.tensor_data(name), b.tensor_data(back)), f"tensor {name}: bytes changed"


def _seeds(*names: str) -> Callable[[Path], list[bytes]]:
    return lambda scratch: _files(*names)


TARGETS: list[Target] = [
    Target("gguf-read", _seeds(*ALL), run_read, ".gguf"),
    Target("gguf-inspect", _seeds(*ALL), run_inspect, ".gguf"),
    Target("gguf-check-head", _seeds(*HEADS), run_check_head, ".gguf"),
    Target("gguf-check-draft", _seeds("main.gguf", "tok.gguf", "head.gguf"), run_check_draft, ".gguf"),
    Target("gguf-check-main", _seeds("main.gguf", "types.gguf"), run_check_main, ".gguf"),
    Target("gguf-translate", _seeds(*HEADS), run_translate, ".gguf"),
]
