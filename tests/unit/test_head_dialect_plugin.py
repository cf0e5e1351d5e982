"""Adding a head dialect is one module (tests/toy_head_dialect.py, as docs/heads.md shows):
importing it registers the class; convert, translate, inspect and check then know it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from tests.gguf_fixtures import rewrite, set_key, small_set

from lanebench.engines.llamacpp.dialect import Dialect
from lanebench.errors import BadInput
from lanebench.gguf import heads, shapes
from lanebench.gguf.check import check_draft
from lanebench.gguf.convert import ConvertOptions, convert_head
from lanebench.gguf.heads import HeadDialect
from lanebench.gguf.inspect import inspect_gguf
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.synth import synth_assistant
from lanebench.gguf.translate import translate
from lanebench.gguf.writer import string, u32

MODULE = "tests.toy_head_dialect"
UPSTREAM_BUILD = Dialect("version: test", 1, None, frozenset({"--spec-draft-n-max"}), ("draft-mtp",))


@pytest.fixture(scope="module")
def toy() -> Iterator[ModuleType]:
    """The toy module, imported (so registered) for this file's tests only."""
    sys.modules.pop(MODULE, None)
    yield importlib.import_module(MODULE)
    heads.unregister("toy")
    sys.modules.pop(MODULE, None)


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_set(tmp_path_factory.mktemp("toy"))


def test_it_registers_and_is_found(toy: ModuleType) -> None:
    d = heads.dialect("toy")
    assert isinstance(d, toy.Toy)
    assert heads.of_arch("toy-assistant") is d and heads.for_server("toy") is d
    assert heads.names() == ("upstream", "atomic", "toy")
    with pytest.raises(BadInput, match=r"^dialect 'nope' is not one of upstream, atomic, toy$"):
        heads.dialect("nope")


def test_a_clashing_dialect_is_refused(toy: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"Again \('toy', arch 'again'\) clashes with Toy"):

        class Again(toy.Toy):
            name = "toy"
            arch = "again"

    with pytest.raises(ValueError, match=r"clashes with Upstream \('upstream', arch 'gemma4-assistant'\)"):

        class SameArch(HeadDialect):
            name = "same-arch"
            arch = "gemma4-assistant"

    assert heads.names() == ("upstream", "atomic", "toy")


def test_convert_writes_a_toy_head_that_inspect_and_check_accept(
    toy: ModuleType, s: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "toy.gguf"
    convert_head(ConvertOptions(s["hf"], s["main"], out, dialect="toy"))
    g = open_gguf(out)
    assert g.arch == "toy-assistant" and g.meta.get(toy.BACKBONE) == 128
    assert {"toy.in.weight", "toy.out.weight"} <= set(g.tensors)
    assert not any(n.startswith("nextn.") for n in g.tensors)
    assert inspect_gguf(out)["kind"] == "head-toy"
    assert check_draft(s["main"], out, "mtp") == []
    lines = check_draft(s["main"], out, "mtp", UPSTREAM_BUILD)
    assert lines == [
        "dialect: this build (upstream) loads 'gemma4-assistant' heads, found 'toy-assistant' "
        "(the toy shape; fix: lanebench gguf translate HEAD --to upstream -o OUT)"
    ]


def test_translate_through_the_toy_keeps_every_byte(
    toy: ModuleType, s: dict[str, Path], tmp_path: Path
) -> None:
    assert translate(s["head"], "toy", tmp_path / "t.gguf")[0] == "upstream"
    assert translate(tmp_path / "t.gguf", "upstream", tmp_path / "u.gguf")[0] == "toy"
    orig, back = open_gguf(s["head"]), open_gguf(tmp_path / "u.gguf")
    assert set(back.tensors) == set(orig.tensors)
    for name in orig.tensors:
        assert np.array_equal(back.tensor_data(name), orig.tensor_data(name)), name
    assert back.arch_key("embedding_length_out") == orig.arch_key("embedding_length_out")


def test_its_key_and_its_rules_are_applied(toy: ModuleType, s: dict[str, Path], tmp_path: Path) -> None:
    translate(s["head"], "toy", tmp_path / "t.gguf")
    key = "toy-assistant.toy_backbone"
    wide = rewrite(tmp_path / "t.gguf", tmp_path / "w.gguf", kv_edit=set_key(key, u32(key, 256)))
    assert "backbone width: expected 128 (main embedding_length), found 256 (toy-assistant.toy_backbone)" in (
        check_draft(s["main"], wide, "mtp")
    )
    text = rewrite(tmp_path / "t.gguf", tmp_path / "x.gguf", kv_edit=set_key(key, string(key, "128")))
    with pytest.raises(BadInput, match=r"key 'toy-assistant\.toy_backbone': expected an integer"):
        inspect_gguf(text)


def test_convert_refuses_a_head_the_toy_loader_would_refuse(
    toy: ModuleType, s: dict[str, Path], tmp_path: Path
) -> None:
    main, _ = shapes.preset("tiny")
    three = shapes.HeadShape(hidden=64, layer_types=(shapes.SWA, shapes.SWA, shapes.FULL), ffn=128)
    synth_assistant(tmp_path / "hf3", replace(main, vocab=512), three, "Gemma4AssistantForCausalLM")
    out = tmp_path / "toy3.gguf"
    with pytest.raises(
        BadInput, match=r"not written: .*block_count: expected at most 2 \(the toy loader\), found 3"
    ):
        convert_head(ConvertOptions(tmp_path / "hf3", s["main"], out, dialect="toy"))
    assert not out.exists()
