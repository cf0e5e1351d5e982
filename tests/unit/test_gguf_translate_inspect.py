"""translate keeps every tensor byte; inspect names the kind of file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.gguf_fixtures import small_set

from lanebench.errors import BadInput
from lanebench.gguf.inspect import inspect_gguf
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.translate import translate


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
