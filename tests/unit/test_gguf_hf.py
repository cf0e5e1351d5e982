"""HF registry and name mapping: pure logic against the loader's tensor table."""

from __future__ import annotations

import pytest

from lanebench.errors import BadInput
from lanebench.gguf import hf, shapes
from lanebench.gguf.heads import expected_tensors
from lanebench.gguf.synth import assistant_config

CLASSES = ("Gemma4AssistantForCausalLM", "Gemma4UnifiedAssistantForCausalLM")


def _cfg(cls: str = CLASSES[0], preset: str = "tiny") -> dict:
    main, head = shapes.preset(preset)
    return assistant_config(main, head, cls)


def test_registry_holds_both_classes() -> None:
    assert set(CLASSES) <= set(hf.known())


def test_unknown_class_lists_the_known_ones() -> None:
    with pytest.raises(BadInput) as exc:
        hf.lookup("Gemma5AssistantForCausalLM")
    assert all(c in str(exc.value) for c in CLASSES)


def test_duplicate_registration_raises() -> None:
    spec = hf.lookup(CLASSES[0])
    with pytest.raises(ValueError):
        hf.register(spec)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("preset", ["tiny", "12b", "26b-a4b", "31b"])
def test_every_hf_tensor_maps_onto_the_loaders_table(cls: str, preset: str) -> None:
    cfg = _cfg(cls, preset)
    spec = hf.spec_for(cfg)
    hp = spec.params(cfg)
    want = expected_tensors(hp, hf.vocab_size(cfg), "upstream")
    mapped = {}
    for name, shape in spec.tensors(hp, cfg).items():
        gname = spec.gguf_name(name)
        assert gname is not None, name
        mapped[gname] = tuple(reversed(shape))  # numpy order -> llama.cpp order
    generated = {"rope_freqs.weight"}
    assert set(mapped) | generated == set(want)
    assert all(want[n] == s for n, s in mapped.items())


def test_params_follow_the_config() -> None:
    cfg = _cfg(preset="31b")
    hp = hf.gemma4_params(cfg)
    assert (hp.hidden, hp.backbone, hp.n_head) == (1024, 5376, 32)
    assert hp.kv_heads == (16, 16, 16, 4)
    assert (hp.head_dim_swa, hp.head_dim_full) == (256, 512)
    assert hp.is_swa == (True, True, True, False)


def test_missing_field_is_named() -> None:
    cfg = _cfg()
    del cfg["text_config"]["hidden_size"]
    with pytest.raises(BadInput, match=r"text_config\.hidden_size"):
        hf.gemma4_params(cfg)


def test_model_type_of_another_model_is_refused() -> None:
    cfg = _cfg()
    cfg["model_type"] = "gemma3"
    with pytest.raises(BadInput, match="model_type"):
        hf.spec_for(cfg)


def test_layer_types_must_match_layer_count() -> None:
    cfg = _cfg()
    cfg["text_config"]["layer_types"] = ["sliding_attention"]
    with pytest.raises(BadInput, match="layer_types"):
        hf.gemma4_params(cfg)


@pytest.mark.parametrize(
    ("hf_name", "gguf_name"),
    [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("pre_projection.weight", "nextn.pre_projection.weight"),
        ("model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"),
        ("model.layers.0.layer_scalar", "blk.0.layer_output_scale.weight"),
        ("model.layers.1.pre_feedforward_layernorm.weight", "blk.1.ffn_norm.weight"),
        ("model.layers.1.self_attn.k_proj.weight", None),
        ("lm_head.weight", None),
    ],
)
def test_name_mapping(hf_name: str, gguf_name: str | None) -> None:
    assert hf.gemma4_gguf_name(hf_name) == gguf_name
