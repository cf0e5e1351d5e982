"""The metadata lanebench reads from a GGUF, with the type and range each key must have.

``validate`` runs once when a file is opened, so every reader downstream (check, translate,
inspect, roofline, fingerprint, convert) can take a known key's value as the type it
expects: an int in range, a finite float, a bool, a str, or a per-layer array with one entry
per ``block_count`` layer. Keys lanebench does not read are not checked beyond the format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from gguf import GGUFValueType

from lanebench.gguf.layout import Field

T = GGUFValueType
INT32_MAX = (1 << 31) - 1
UINT32_MAX = (1 << 32) - 1
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS
INT_TYPES = frozenset({T.UINT8, T.INT8, T.UINT16, T.INT16, T.UINT32, T.INT32, T.UINT64, T.INT64})
FLOAT_TYPES = frozenset({T.FLOAT32, T.FLOAT64})

Kind = Literal["int", "float", "bool", "str", "name", "layers", "pattern", "strs", "floats", "ints"]


@dataclass(frozen=True, slots=True)
class Spec:
    """What one key must hold. ``name``: a printable string; ``layers``: an int, or one int
    per layer; ``pattern``: an int period, or one bool per layer; ``strs``/``floats``/``ints``:
    arrays."""

    kind: Kind
    hi: int = INT32_MAX  # ints: inclusive upper bound (the lower bound is 0)


INT, FLOAT, BOOL, STR = Spec("int"), Spec("float"), Spec("bool"), Spec("str")
LAYERS = Spec("layers")

GLOBAL_KEYS: dict[str, Spec] = {
    "general.architecture": Spec("name"),  # it prefixes key names, in messages too
    "general.name": STR,
    "general.size_label": STR,
    "general.file_type": INT,
    "general.quantization_version": INT,
    "tokenizer.ggml.model": STR,
    "tokenizer.ggml.pre": STR,
    "tokenizer.ggml.tokens": Spec("strs"),
    "tokenizer.ggml.scores": Spec("floats"),
    "tokenizer.ggml.token_type": Spec("ints"),
    "tokenizer.ggml.bos_token_id": Spec("int", UINT32_MAX),
    "tokenizer.ggml.eos_token_id": Spec("int", UINT32_MAX),
    "tokenizer.ggml.add_bos_token": BOOL,
    "tokenizer.ggml.add_eos_token": BOOL,
}
PER_TOKEN = ("tokenizer.ggml.scores", "tokenizer.ggml.token_type")

# suffixes of ``{general.architecture}.*`` keys
ARCH_KEYS: dict[str, Spec] = {
    "block_count": Spec("int", MAX_LAYERS),
    "context_length": INT,
    "embedding_length": INT,
    "embedding_length_out": INT,
    "embedding_length_per_layer_input": INT,
    "n_embd_backbone": INT,
    "nextn_predict_layers": INT,
    "feed_forward_length": LAYERS,
    "expert_count": INT,
    "expert_used_count": INT,
    "expert_feed_forward_length": INT,
    "attention.head_count": LAYERS,
    "attention.head_count_kv": LAYERS,
    "attention.key_length": INT,
    "attention.value_length": INT,
    "attention.key_length_swa": INT,
    "attention.value_length_swa": INT,
    "attention.sliding_window": INT,
    "attention.sliding_window_pattern": Spec("pattern"),
    "attention.shared_kv_layers": INT,
    "attention.layer_norm_rms_epsilon": FLOAT,
    "attention.k_eq_v": BOOL,
    "rope.freq_base": FLOAT,
    "rope.freq_base_swa": FLOAT,
    "rope.dimension_count": INT,
    "rope.dimension_count_swa": INT,
    "final_logit_softcapping": FLOAT,
    "n_centroids": INT,
    "centroid_top_k": INT,
    "use_ordered_embeddings": BOOL,
    "requires_target_arch": STR,
}


class BadMetadata(Exception):
    """A key's value has the wrong type or range: ``key``, ``expected``, ``found``."""

    def __init__(self, key: str, expected: str, found: str) -> None:
        super().__init__(f"key {key!r}: expected {expected}, found {found}")
        self.key, self.expected, self.found = key, expected, found


def describe(f: Field) -> str:
    """A short, one-line account of a field's type and value, for error messages."""
    if f.is_array:
        return f"an array of {len(f.value)} {f.types[1].name.lower()}"
    text = repr(f.value)
    return f"{f.types[0].name.lower()} {text if len(text) <= 40 else text[:37] + '...'}"


def validate(fields: Mapping[str, Field]) -> None:
    """BadMetadata for the first known key whose type or range is wrong."""
    for key, spec in GLOBAL_KEYS.items():
        if key in fields:
            _check(fields[key], spec, None)
    arch = fields["general.architecture"].value if "general.architecture" in fields else ""
    n_layer = None
    if arch and f"{arch}.block_count" in fields:
        _check(fields[f"{arch}.block_count"], ARCH_KEYS["block_count"], None)
        n_layer = int(fields[f"{arch}.block_count"].value)
    if arch:
        for suffix, spec in ARCH_KEYS.items():
            if f"{arch}.{suffix}" in fields:
                _check(fields[f"{arch}.{suffix}"], spec, n_layer)
    tokens = fields.get("tokenizer.ggml.tokens")
    for key in PER_TOKEN:
        if tokens is not None and key in fields and len(fields[key].value) != len(tokens.value):
            raise BadMetadata(
                key, f"{len(tokens.value)} entries (one per token)", f"{len(fields[key].value)} entries"
            )


def _check(f: Field, spec: Spec, n_layer: int | None) -> None:
    kind = spec.kind
    if kind == "int" or (kind in ("layers", "pattern") and not f.is_array):
        return _int(f, spec.hi)
    if kind in ("layers", "pattern"):
        elem = "int" if kind == "layers" else "bool"
        _array_of(f, INT_TYPES if elem == "int" else frozenset({T.BOOL}), f"{elem}s")
        if n_layer is not None and len(f.value) != n_layer:
            raise BadMetadata(f.name, f"{n_layer} entries (one per block_count layer)", describe(f))
        if n_layer is None and len(f.value) > MAX_LAYERS:
            raise BadMetadata(f.name, f"at most {MAX_LAYERS} entries (one per layer)", describe(f))
        if elem == "int":
            _ints_in_range(f, INT32_MAX)
        return None
    if kind == "float":
        if f.types[0] not in FLOAT_TYPES or not math.isfinite(f.value):
            raise BadMetadata(f.name, "a finite float", describe(f))
    elif kind == "bool":
        if f.types[0] != T.BOOL:
            raise BadMetadata(f.name, "a bool", describe(f))
    elif kind in ("str", "name"):
        if f.types[0] != T.STRING:
            raise BadMetadata(f.name, "a string", describe(f))
        if kind == "name" and not f.value.isprintable():
            raise BadMetadata(f.name, "a name without control characters", describe(f))
    elif kind == "strs":
        _array_of(f, frozenset({T.STRING}), "strings")
    elif kind == "floats":
        _array_of(f, FLOAT_TYPES, "floats")
    elif kind == "ints":
        _array_of(f, INT_TYPES, "ints")
    return None


def _int(f: Field, hi: int) -> None:
    if f.types[0] not in INT_TYPES or not 0 <= f.value <= hi:
        raise BadMetadata(f.name, f"an integer 0..{hi}", describe(f))


def _array_of(f: Field, types: frozenset[GGUFValueType], what: str) -> None:
    if not f.is_array or f.types[1] not in types:
        raise BadMetadata(f.name, f"an array of {what}", describe(f))


def _ints_in_range(f: Field, hi: int) -> None:
    values = np.asarray(f.value)
    if values.size and (int(values.min()) < 0 or int(values.max()) > hi):
        raise BadMetadata(f.name, f"integers 0..{hi}", f"{int(values.min())}..{int(values.max())}")
