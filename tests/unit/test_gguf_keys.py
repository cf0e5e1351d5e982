"""GGUF keys are named once: gguf-py's Keys templates, or the dialect that owns a key."""

from __future__ import annotations

import pytest
from gguf.constants import Keys

from lanebench.gguf import heads, keys
from lanebench.gguf.keys import INT, STR, Key
from lanebench.gguf.meta import BadMetadata, Meta

GGUF_PY = {
    v
    for cls in (Keys.General, Keys.LLM, Keys.Attention, Keys.Rope, Keys.Tokenizer)
    for v in vars(cls).values()
    if isinstance(v, str)
}


def test_every_key_is_a_gguf_py_template_or_a_registered_dialects_own() -> None:
    owned = {k.template for name in heads.names() for k in heads.dialect(name).own_keys}
    strays = [k.template for k in keys.known() if k.template not in GGUF_PY and k.template not in owned]
    assert strays == []
    assert "{arch}.n_embd_backbone" in owned  # gguf-py does not know the Atomic keys


def test_a_key_registered_twice_with_another_spec_is_refused() -> None:
    keys.register(Key(keys.BLOCK_COUNT.template, keys.BLOCK_COUNT.spec))  # the same: no-op
    with pytest.raises(ValueError, match=r"'\{arch\}\.block_count' registered twice"):
        keys.register(Key(keys.BLOCK_COUNT.template, STR))


def test_meta_from_values_decodes_like_a_file() -> None:
    m = Meta.from_values(
        {
            "general.architecture": "llama",
            "llama.block_count": 3,
            "llama.attention.head_count": 4,
            "llama.attention.head_count_kv": [1, 2, 2],
            "llama.attention.sliding_window_pattern": [True, False, True],
        }
    )
    assert m.get(keys.HEAD_COUNT) == (4, 4, 4) and m.get(keys.HEAD_COUNT_KV) == (1, 2, 2)
    assert m.get(keys.SLIDING_WINDOW_PATTERN) == (True, False, True)
    assert m.get(keys.KEY_LENGTH) is None and m.get(keys.KEY_LENGTH, 64) == 64
    assert m.name(keys.BLOCK_COUNT) == "llama.block_count"
    with pytest.raises(BadMetadata, match=r"'llama\.feed_forward_length': expected 3 values"):
        Meta.from_values(
            {"general.architecture": "llama", "llama.block_count": 3, "llama.feed_forward_length": [1]}
        )
    assert Key("{arch}.x", INT).name("gemma4") == "gemma4.x"
