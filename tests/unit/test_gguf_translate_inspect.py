"""translate keeps every tensor byte; inspect names the kind of file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.gguf_fixtures import rewrite, set_key, small_set

from lanebench.errors import BadInput
from lanebench.gguf.inspect import inspect_gguf
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.translate import translate
from lanebench.gguf.writer import f32, u32


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_set(tmp_path_factory.mktemp("tr"))


def test_round_trip_keeps_tensor_bytes_and_keys(s: dict[str, Path], tmp_path: Path) -> None:
    translate(s["head"], "atomic", tmp_path / "a.gguf")
    translate(tmp_path / "a.gguf", "upstream", tmp_path / "u.gguf")
    a, u, orig = open_gguf(tmp_path / "a.gguf"), open_gguf(tmp_path / "u.gguf"), open_gguf(s["head"])
    assert "mtp.pre_projection.weight" in a.tensors and "nextn.pre_projection.weight" not in a.tensors
    assert a.arch_key("n_embd_backbone") == orig.arch_key("embedding_length_out")
    assert set(u.tensors) == set(orig.tensors)
    for name in orig.tensors:
        assert np.array_equal(u.tensor_data(name), orig.tensor_data(name)), name
        assert u.tensors[name] == orig.tensors[name]
    for key in orig.fields:
        if key.startswith("gemma4-assistant."):
            assert u.get(key) == orig.get(key), key


def test_translate_refuses_same_dialect_and_plain_models(s: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="already"):
        translate(s["head"], "upstream", tmp_path / "x.gguf")
    with pytest.raises(BadInput, match="not an assistant head"):
        translate(s["main"], "atomic", tmp_path / "x.gguf")


def test_translate_refuses_to_write_a_head_its_own_inspect_rejects(
    s: dict[str, Path], tmp_path: Path
) -> None:
    """An Atomic head carrying ``gemma4-assistant.n_embd_backbone`` as f32 1e38 (a key under the
    other dialect's prefix: nobody checks it there) became, translated, an upstream head whose
    own ``inspect`` refused it. Now the head written is checked and refused, and no file is left."""
    translate(s["head"], "atomic", tmp_path / "a.gguf")
    key = "gemma4-assistant.n_embd_backbone"
    head = rewrite(tmp_path / "a.gguf", tmp_path / "h.gguf", kv_edit=lambda kvs: [*kvs, f32(key, 1e38)])
    assert inspect_gguf(head)["kind"] == "head-atomic"  # the source is a valid file
    out = tmp_path / "u.gguf"
    with pytest.raises(BadInput, match=rf"^output {out}: not written: .*'{key}': expected an integer"):
        translate(head, "upstream", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gguf", "h.gguf"]


def test_translate_refuses_a_head_the_target_loader_rejects(s: dict[str, Path], tmp_path: Path) -> None:
    """The Atomic loader takes a head as wide as its backbone; upstream's does not
    (``embedding_length_out`` must differ from ``embedding_length``): such a head is not written."""
    translate(s["head"], "atomic", tmp_path / "a.gguf")
    key = "gemma4_assistant.n_embd_backbone"
    width = open_gguf(s["head"]).arch_key("embedding_length")
    head = rewrite(tmp_path / "a.gguf", tmp_path / "h.gguf", kv_edit=set_key(key, u32(key, width)))
    with pytest.raises(BadInput, match="embedding_length_out: expected it to differ from embedding_length"):
        translate(head, "upstream", tmp_path / "u.gguf")
    assert not (tmp_path / "u.gguf").exists()


def test_inspect_kinds(s: dict[str, Path], tmp_path: Path) -> None:
    translate(s["head"], "atomic", tmp_path / "a.gguf")
    assert inspect_gguf(s["head"])["kind"] == "head-upstream"
    assert inspect_gguf(tmp_path / "a.gguf")["kind"] == "head-atomic"
    assert inspect_gguf(s["main"])["kind"] == "model"
    assert inspect_gguf(s["tok"])["kind"] == "unknown"


def test_inspect_figures(s: dict[str, Path]) -> None:
    info = inspect_gguf(s["head"])
    g = open_gguf(s["head"])
    assert info["tensor_count"] == len(g.tensors)
    assert info["parameters"] == sum(t.n_elements for t in g.tensors.values())
    assert info["vocab"]["size"] == 512
    assert info["vocab"]["tokens_sha256_16"] == inspect_gguf(s["main"])["vocab"]["tokens_sha256_16"]
    assert info["metadata"]["gemma4-assistant.embedding_length_out"] == 128
    assert sum(e["tensors"] for e in info["tensor_types"].values()) == info["tensor_count"]


def test_inspect_json_cli(s: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", "gguf", "inspect", str(s["head"]), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["architecture"] == "gemma4-assistant"
