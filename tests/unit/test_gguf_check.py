"""check rules on small real GGUF files (a 512-token vocabulary keeps them fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.gguf_fixtures import edit_tokens, f32_tensor, rewrite, set_key, small_set, tokenizer_gguf, truncate

from lanebench.engines.llamacpp.dialect import Dialect
from lanebench.errors import BadInput
from lanebench.gguf.check import check_draft
from lanebench.gguf.translate import translate
from lanebench.gguf.writer import string, u32


def _build(speculative: str, spec_types: tuple[str, ...] = ("draft-simple", "draft-mtp")) -> Dialect:
    flags = {"upstream": "--spec-draft-n-max", "atomic": "--draft-block-size"}.get(speculative, "--port")
    return Dialect(
        "version: test (build 1)", 1, None, frozenset({flag for flag in (flags, "--spec-type")}), spec_types
    )


UPSTREAM = _build("upstream")


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_set(tmp_path_factory.mktemp("small"))


def test_good_head_passes(s: dict[str, Path]) -> None:
    assert check_draft(s["main"], s["head"], "mtp", UPSTREAM) == []
    assert check_draft(s["main"], s["head"], "mtp", None) == []


def test_missing_draft_is_bad_input(s: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        check_draft(s["main"], tmp_path / "nope.gguf", "mtp")


def _lines(s: dict[str, Path], head: Path, build: Dialect | None = UPSTREAM) -> str:
    return "\n".join(check_draft(s["main"], head, "mtp", build))


def test_wrong_backbone_key(s: dict[str, Path], tmp_path: Path) -> None:
    key = "gemma4-assistant.embedding_length_out"
    head = rewrite(s["head"], tmp_path / "h.gguf", kv_edit=set_key(key, u32(key, 256)))
    out = _lines(s, head)
    assert "backbone width: expected 128 (main embedding_length), found 256" in out


def test_missing_key(s: dict[str, Path], tmp_path: Path) -> None:
    key = "gemma4-assistant.embedding_length_out"
    head = rewrite(s["head"], tmp_path / "h.gguf", kv_edit=set_key(key, None))
    assert f"expected key {key}" in _lines(s, head)


def test_atomic_head_on_upstream_build_names_the_fix(s: dict[str, Path], tmp_path: Path) -> None:
    translate(s["head"], "atomic", tmp_path / "a.gguf")
    out = _lines(s, tmp_path / "a.gguf")
    assert out.startswith("dialect:") and "translate" in out
    assert check_draft(s["main"], tmp_path / "a.gguf", "mtp", _build("atomic", ("mtp",))) == []


def test_upstream_head_on_atomic_build(s: dict[str, Path]) -> None:
    assert "dialect: this build (atomic)" in _lines(s, s["head"], _build("atomic", ("mtp",)))


def test_build_without_mtp(s: dict[str, Path]) -> None:
    assert _lines(s, s["head"], _build("upstream", ("draft-simple",))).startswith("build:")


def test_extra_and_missing_and_misshapen_tensors(s: dict[str, Path], tmp_path: Path) -> None:
    head = rewrite(s["head"], tmp_path / "h.gguf", drop=("blk.0.ffn_up.weight",),
                   replace_tensor=f32_tensor("output_norm.weight", (65,)))  # fmt: skip
    out = _lines(s, head)
    assert "tensor: expected blk.0.ffn_up.weight, found none" in out
    assert "tensor shape: expected output_norm.weight [64], found [65]" in out


def test_target_must_be_gemma4(s: dict[str, Path], tmp_path: Path) -> None:
    key = "gemma4_assistant.requires_target_arch"
    translate(s["head"], "atomic", tmp_path / "a.gguf")
    head = rewrite(tmp_path / "a.gguf", tmp_path / "b.gguf", kv_edit=set_key(key, string(key, "gemma3")))
    assert "requires_target_arch: expected 'gemma4'" in _lines(s, head, None)


def test_vocabulary_and_bos(s: dict[str, Path], tmp_path: Path) -> None:
    head = rewrite(s["head"], tmp_path / "h.gguf", kv_edit=edit_tokens(lambda t: [*t[:-1], "other"]))
    assert "vocabulary: expected the main model's 512 tokens" in _lines(s, head)
    key = "tokenizer.ggml.bos_token_id"
    head = rewrite(s["head"], tmp_path / "b.gguf", kv_edit=set_key(key, u32(key, 7)))
    assert "BOS id: expected 2 (main), found 7" in _lines(s, head)


def test_truncated_and_not_gguf(s: dict[str, Path], tmp_path: Path) -> None:
    assert "truncated" in _lines(s, truncate(s["head"], tmp_path / "t.gguf", 0.3))
    (tmp_path / "x.gguf").write_text("hello")
    assert "not a GGUF" in _lines(s, tmp_path / "x.gguf")


# ---- draft models: common_speculative_are_compatible -----------------------------------


def test_draft_model_same_vocab_passes(s: dict[str, Path]) -> None:
    assert check_draft(s["main"], s["main"], "model", UPSTREAM) == []


def test_draft_model_vocab_size_difference_over_128(s: dict[str, Path], tmp_path: Path) -> None:
    other = tokenizer_gguf(tmp_path / "tok.gguf", 512 + 129)
    out = check_draft(s["main"], other, "model", UPSTREAM)
    assert any(line.startswith("vocab size:") for line in out)


def test_draft_model_within_128_but_text_differs(s: dict[str, Path], tmp_path: Path) -> None:
    d = rewrite(s["main"], tmp_path / "d.gguf", kv_edit=edit_tokens(lambda t: [*t[:100], "zz", *t[101:]]))
    assert check_draft(s["main"], d, "model", UPSTREAM) == [
        "token text: expected identical from id 5, first differs at id 100"
    ]
    early = rewrite(s["main"], tmp_path / "e.gguf", kv_edit=edit_tokens(lambda t: ["x", *t[1:]]))
    assert check_draft(s["main"], early, "model", UPSTREAM) == []  # ids below 5 are not compared


def test_draft_model_on_a_build_without_speculation(s: dict[str, Path]) -> None:
    none = Dialect("v", None, None, frozenset({"--port"}), ())
    assert check_draft(s["main"], s["main"], "model", none)[0].startswith("build:")
