"""Head dialects: metadata and tensor names, pure logic."""

from __future__ import annotations

import pytest

from lanebench.gguf import hf, shapes
from lanebench.gguf.heads import dialect, expected_tensors, format_of_arch, head_kvs, rename_tensor
from lanebench.gguf.synth import assistant_config


def _hp():
    main, head = shapes.preset("26b-a4b")
    return hf.gemma4_params(assistant_config(main, head, "Gemma4AssistantForCausalLM"))


def test_upstream_keys_carry_backbone_and_nextn() -> None:
    keys = {kv.key: kv.value for kv in head_kvs(_hp(), "upstream")}
    assert keys["gemma4-assistant.embedding_length_out"] == 2816
    assert keys["gemma4-assistant.nextn_predict_layers"] == keys["gemma4-assistant.block_count"] == 4
    assert not any("n_embd_backbone" in k for k in keys)


def test_atomic_keys_carry_backbone_and_target() -> None:
    keys = {kv.key: kv.value for kv in head_kvs(_hp(), "atomic")}
    assert keys["gemma4_assistant.n_embd_backbone"] == 2816
    assert keys["gemma4_assistant.requires_target_arch"] == "gemma4"
    assert not any("embedding_length_out" in k or "nextn" in k for k in keys)


@pytest.mark.parametrize(
    "name", ["nextn.pre_projection.weight", "masked_embd_ordering", "blk.0.attn_q.weight"]
)
def test_tensor_rename_round_trip(name: str) -> None:
    atomic = rename_tensor(name, "upstream", "atomic")
    assert rename_tensor(atomic, "atomic", "upstream") == name


def test_atomic_projection_names() -> None:
    assert rename_tensor("nextn.post_projection.weight", "upstream", "atomic") == "mtp.post_projection.weight"


def test_expected_shapes_follow_the_loader() -> None:
    t = expected_tensors(_hp(), 262144, "upstream")
    assert t["nextn.pre_projection.weight"] == (2 * 2816, 1024)
    assert t["nextn.post_projection.weight"] == (1024, 2816)
    assert t["blk.3.attn_q.weight"] == (1024, 16 * 512)  # full layer: 512-wide heads
    assert t["blk.0.attn_q.weight"] == (1024, 16 * 256)
    assert t["rope_freqs.weight"] == (256,)
    assert not any("attn_k" in n or "attn_v" in n for n in t)


def test_arch_names() -> None:
    assert format_of_arch(dialect("upstream").arch) == "upstream"
    assert format_of_arch("gemma4_assistant") == "atomic"
    assert format_of_arch("gemma4") is None
