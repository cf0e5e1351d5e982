"""The decode roofline: bytes read from memory per generated token, from the GGUF itself.

Decoding one token reads every weight the token passes through once, plus the KV cache of
every layer up to the current context. At batch size one this traffic, not arithmetic, bounds
the speed: ``tok/s <= bandwidth / bytes per token``. The core (:func:`bytes_per_token`) is a
pure function over tensor descriptions and a GGUF's typed metadata record (``gguf.meta.Meta``;
a mapping of full key names is decoded into one); :func:`read_gguf` is a thin adapter over
lanebench's checked reader. ``docs/roofline.md`` states every counting rule and its source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gguf

from lanebench.errors import BadInput
from lanebench.gguf import keys as K
from lanebench.gguf.meta import BadMetadata, Meta

V = TypeVar("V")
CATEGORIES = ("attention", "ffn_dense", "experts", "output", "embed_lookup", "other")

# Default sliding-window layer patterns of llama.cpp (src/models/<arch>.cpp, ``load_swa_pattern``)
# when the GGUF has no ``attention.sliding_window_pattern``: (n_pattern, dense_first).
# Not dense-first: layer il is SWA unless il % n == n - 1; dense-first: unless il % n == 0.
SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma-embedding": (6, False),
    "gemma3n": (5, False),
    "cohere2": (4, False),
    "cohere2moe": (4, True),
    "exaone4": (4, False),
    "exaone-moe": (4, False),
    "olmo2": (4, False),
    "gpt-oss": (2, False),
    "llama4": (4, False),
    "afmoe": (4, False),
    "mellum": (4, False),
    "plamo3": (8, False),
    "smallthinker": (4, True),
    "laguna": (4, True),
    "phi3": (1, False),
}

_EXPERTS = re.compile(r"^blk\.\d+\.ffn_(gate|up|down|gate_up)_exps\.")
_ROUTER = re.compile(r"^blk\.\d+\.ffn_gate_inp(_shexp)?\.")
_ATTN = re.compile(r"^blk\.\d+\.attn_(q|k|v|qkv|output|q_a|q_b|kv_a_mqa|kv_b|k_b|v_b|out)\b")
_FFN = re.compile(r"^blk\.\d+\.ffn_(gate|up|down|gate_up)(_shexp)?\.")


@dataclass(slots=True, frozen=True)
class TensorInfo:
    """One tensor as a GGUF declares it; ``shape`` in llama.cpp order (ne0 first)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: str

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies in the file (and in memory) for its GGML type."""
        return type_nbytes(self.ggml_type, self.n_elements, self.name)


def ggml_type(name: str, what: str = "type") -> gguf.GGMLQuantizationType:
    """Look up a GGML type by name (``f16``, ``Q4_0``, ...); BadInput lists the known ones."""
    try:
        return gguf.GGMLQuantizationType[name.strip().upper()]
    except KeyError:
        known = ", ".join(t.name.lower() for t in gguf.GGMLQuantizationType)
        raise BadInput(f"{what}: unknown GGML type {name!r} (known: {known})") from None


def type_nbytes(type_name: str, n_elements: int, what: str = "tensor") -> int:
    """Bytes of ``n_elements`` values stored as ``type_name`` (blocks of ``block_size``)."""
    block, size = gguf.GGML_QUANT_SIZES[ggml_type(type_name, what)]
    if n_elements % block:
        raise BadInput(
            f"{what}: {n_elements} elements is not a whole number of {type_name} blocks of {block}"
        )
    return n_elements // block * size


@dataclass(slots=True, frozen=True)
class ModelShape:
    """What the KV and expert arithmetic needs, read from GGUF metadata (see ``model_shape``)."""

    arch: str
    n_layer: int
    n_embd: int
    head_count_kv: tuple[int, ...]
    key_length: int
    value_length: int
    key_length_swa: int
    value_length_swa: int
    is_swa: tuple[bool, ...]
    window: int
    expert_count: int = 0
    expert_used_count: int = 0
    notes: tuple[str, ...] = ()

    @property
    def n_swa_layers(self) -> int:
        return sum(self.is_swa)

    def kv_row_elements(self, il: int) -> tuple[int, int]:
        """(K, V) elements stored per position for layer ``il``."""
        kv = self.head_count_kv[il]
        if self.is_swa[il]:
            return kv * self.key_length_swa, kv * self.value_length_swa
        return kv * self.key_length, kv * self.value_length


Metadata = Meta | Mapping[str, Any]


def as_meta(meta: Metadata) -> Meta:
    """The typed record: ``read_gguf`` gives one; a mapping of full key names is decoded."""
    if isinstance(meta, Meta):
        return meta
    try:
        return Meta.from_values(meta)
    except BadMetadata as exc:
        raise BadInput(f"GGUF metadata {exc}") from None


def swa_layers(meta: Metadata, arch: str, n_layer: int) -> tuple[tuple[bool, ...], str | None]:
    """Which layers use the sliding window, as llama.cpp decides for ``arch``; and a note."""
    m = as_meta(meta)
    if m.get(K.SLIDING_WINDOW, 0) <= 0:
        return (False,) * n_layer, None
    pattern = m.get(K.SLIDING_WINDOW_PATTERN)
    if isinstance(pattern, tuple):
        if len(pattern) != n_layer:
            key = m.name(K.SLIDING_WINDOW_PATTERN)
            raise BadInput(f"GGUF metadata {key}: {len(pattern)} values for {n_layer} layers")
        return pattern, None
    default = SWA_PATTERNS.get(arch)
    if pattern is None and default is None:
        note = f"no sliding-window pattern known for {arch}: all layers counted at full context"
        return (False,) * n_layer, note
    n, dense_first = (pattern, False) if pattern is not None else (default or (0, False))
    if n == 0:
        return (True,) * n_layer, None
    if dense_first:
        return tuple(il % n != 0 for il in range(n_layer)), None
    return tuple(il % n < n - 1 for il in range(n_layer)), None


def model_shape(meta: Metadata) -> ModelShape:
    """Read the attention/KV/expert shape of a model from its GGUF metadata."""
    m = as_meta(meta)
    if not m.arch:
        raise BadInput(f"GGUF metadata: {K.ARCHITECTURE.template} is missing")

    def need(key: K.Key[V]) -> V:
        value = m.get(key)
        if value is None:
            raise BadInput(f"GGUF metadata: {m.name(key)} is missing")
        return value

    n_layer = need(K.BLOCK_COUNT)
    n_embd = need(K.EMBEDDING_LENGTH)
    heads = need(K.HEAD_COUNT)
    n_head0 = max(heads[0], 1)
    k_len = m.get(K.KEY_LENGTH, n_embd // n_head0)
    v_len = m.get(K.VALUE_LENGTH, n_embd // n_head0)
    is_swa, note = swa_layers(m, m.arch, n_layer)
    shared_kv = m.get(K.SHARED_KV_LAYERS, 0)
    notes = [note] if note else []
    if shared_kv:
        notes.append(f"last {shared_kv} layers reuse earlier layers' KV; their reads are still counted")
    return ModelShape(
        arch=m.arch,
        n_layer=n_layer,
        n_embd=n_embd,
        head_count_kv=m.get(K.HEAD_COUNT_KV, heads),
        key_length=k_len,
        value_length=v_len,
        key_length_swa=m.get(K.KEY_LENGTH_SWA, k_len),
        value_length_swa=m.get(K.VALUE_LENGTH_SWA, v_len),
        is_swa=is_swa,
        window=m.get(K.SLIDING_WINDOW, 0),
        expert_count=m.get(K.EXPERT_COUNT, 0),
        expert_used_count=m.get(K.EXPERT_USED_COUNT, 0),
        notes=tuple(notes),
    )


def kv_bytes_per_token(shape: ModelShape, ctx: int, kv_type: str = "f16") -> int:
    """KV cache bytes read to decode one token at context ``ctx`` (K and V, every layer).

    A sliding-window layer reads ``min(ctx, window)`` positions, any other layer ``ctx``.
    """
    if ctx < 0:
        raise BadInput(f"context (--ctx) must be >= 0, got {ctx}")
    total = 0
    for il in range(shape.n_layer):
        positions = min(ctx, shape.window) if shape.is_swa[il] and shape.window > 0 else ctx
        k, v = shape.kv_row_elements(il)
        row = type_nbytes(kv_type, k, "KV cache type") + type_nbytes(kv_type, v, "KV cache type")
        total += positions * row
    return total


def category(name: str, tied: bool) -> str:
    """Which part of the per-token read a tensor belongs to (see docs/roofline.md)."""
    if name.startswith("token_embd."):
        return "output" if tied else "embed_lookup"
    if name.startswith(("output.", "per_layer_token_embd.")):
        return "output" if name.startswith("output.") else "embed_lookup"
    if "norm" in name or _ROUTER.match(name):
        return "other"
    if _EXPERTS.match(name):
        return "experts" if name.endswith(".weight") else "other"
    if _ATTN.match(name):
        return "attention"
    if _FFN.match(name):
        return "ffn_dense"
    return "other"


def expert_union_share(used: int, count: int, tokens: int = 1) -> float:
    """Expected share of experts a batch of ``tokens`` touches, top-``used`` of ``count`` each.

    Assumes independent, uniform routing: ``1 - (1 - used/count) ** tokens``.
    """
    if count <= 0:
        return 1.0
    return 1.0 - (1.0 - used / count) ** max(tokens, 1)


@dataclass(slots=True)
class Roofline:
    """Bytes read per generated token, by part; all figures are bytes."""

    arch: str
    ctx: int
    kv_type: str
    breakdown: dict[str, int]
    kv_bytes: int
    experts_stored_bytes: int
    file_tensor_bytes: int
    tied_embeddings: bool
    n_layer: int
    n_swa_layers: int
    window: int
    expert_count: int
    expert_used_count: int
    notes: list[str] = field(default_factory=list)

    @property
    def weights_bytes(self) -> int:
        return sum(self.breakdown.values())

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes

    def step_bytes(self, tokens: int) -> float:
        """Bytes read to run ``tokens`` positions in one batch (a verification step).

        Dense weights and KV are read once; routed experts by their expected union.
        """
        share = expert_union_share(self.expert_used_count, self.expert_count, tokens)
        dense = self.total_bytes - self.breakdown["experts"]
        return dense + self.experts_stored_bytes * share

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(weights_bytes=self.weights_bytes, total_bytes=self.total_bytes)
        return d


def bytes_per_token(
    tensors: Sequence[TensorInfo], meta: Metadata, ctx: int, kv_type: str = "f16"
) -> Roofline:
    """Bytes read from memory to decode one token: weights by part, plus the KV cache at ``ctx``.

    Rules: a tensor is read in full once per token, except routed expert tensors (their
    ``expert_used_count / expert_count`` share) and the input embedding (one row), unless the
    embeddings are tied (no ``output.weight``): then ``token_embd`` is the output matrix, read
    in full once.
    """
    shape = model_shape(meta)
    names = {t.name for t in tensors}
    tied = "output.weight" not in names and "token_embd.weight" in names
    share = shape.expert_used_count / shape.expert_count if shape.expert_count else 1.0
    parts = dict.fromkeys(CATEGORIES, 0)
    stored_experts = 0
    for t in tensors:
        part = category(t.name, tied)
        nbytes = t.nbytes
        if part == "experts":
            stored_experts += nbytes
            parts[part] += round(nbytes * share)
        elif part == "embed_lookup":
            parts[part] += nbytes // t.shape[-1] if len(t.shape) > 1 else nbytes
        else:
            parts[part] += nbytes
    notes = list(shape.notes)
    if stored_experts and not shape.expert_count:
        notes.append("expert tensors present but no expert_count in metadata: counted in full")
    if any(n.startswith(("mtp.centroids", "masked_embd_centroids")) for n in names):
        notes.append("head has ordered-embedding centroids: its output is counted in full (upper bound)")
    return Roofline(
        arch=shape.arch,
        ctx=ctx,
        kv_type=kv_type.lower(),
        breakdown=parts,
        kv_bytes=kv_bytes_per_token(shape, ctx, kv_type),
        experts_stored_bytes=stored_experts,
        file_tensor_bytes=sum(t.nbytes for t in tensors),
        tied_embeddings=tied,
        n_layer=shape.n_layer,
        n_swa_layers=shape.n_swa_layers,
        window=shape.window,
        expert_count=shape.expert_count,
        expert_used_count=shape.expert_used_count,
        notes=notes,
    )


def read_gguf(path: Path, what: str = "MODEL") -> tuple[list[TensorInfo], Meta]:
    """Tensor descriptions and the typed metadata record of a GGUF."""
    from lanebench.gguf.reader import open_gguf

    g = open_gguf(path, what)
    return [TensorInfo(t.name, t.shape, t.type_name) for t in g.tensors.values()], g.meta


def roofline_of(path: Path, ctx: int, kv_type: str = "f16", what: str = "MODEL") -> Roofline:
    """``bytes_per_token`` for a GGUF file."""
    tensors, meta = read_gguf(path, what)
    return bytes_per_token(tensors, meta, ctx, kv_type)


def decode_ceiling_tps(bytes_per_token: float, bandwidth_bytes_per_s: float) -> float:
    """Upper bound on decode tokens per second: bandwidth (bytes/s) over bytes per token."""
    if bytes_per_token <= 0 or bandwidth_bytes_per_s <= 0:
        raise ValueError("bytes per token and bandwidth must be positive")
    return bandwidth_bytes_per_s / bytes_per_token


def pct_of_ceiling(decode_tps: float, ceiling_tps: float) -> float:
    """Percent of the decode ceiling a measured rate reached (100 = at the roofline)."""
    if ceiling_tps <= 0:
        raise ValueError("ceiling must be positive")
    return 100.0 * decode_tps / ceiling_tps


def spec_bytes_per_token(
    target_step_bytes: float,
    head_bytes_per_draft: float,
    drafted_per_step: float,
    tokens_per_step: float,
) -> float:
    """Bytes read per generated token with speculation.

    One verification step reads the target once (``target_step_bytes``, for all the positions
    it verifies) and the draft once per drafted token; it yields ``tokens_per_step`` tokens
    (the mean accepted length, >= 1).
    """
    if tokens_per_step < 1:
        raise ValueError("tokens per step must be >= 1")
    return (target_step_bytes + drafted_per_step * head_bytes_per_draft) / tokens_per_step
