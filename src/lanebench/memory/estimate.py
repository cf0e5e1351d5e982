"""A lane's memory, estimated from its GGUF files before anything starts (pure but for reading
the GGUF headers), in MiB, split the way llama.cpp places it (``memory.layout``):

- weights: the tensor bytes, per repeating layer (``blk.N.*``; a MoE layer's expert tensors
  ``ffn_{up,down,gate,gate_up}_{,ch}exps`` apart, the ones ``--fit`` moves first), the input
  layer (token embeddings and every tensor outside a layer: always in host memory) and the
  output layer (``output_norm`` and ``output``; an output tied to the token embeddings is a copy
  of them where it runs on a device);
- KV: per layer, K and V rows of the cache types for every cell; llama-server gives each of
  ``slots`` sequences ``ctx / slots`` cells, a sliding-window layer ``min(ctx / slots, window +
  n_ubatch)`` (``roofline.kv_bytes_per_token`` with the window widened by the batch);
- compute: a stated allowance, ``COMPUTE_BASE_MIB`` + ``n_ubatch x n_embd x 4 B x 8``
  (activations, on every place that runs layers) + ``n_vocab x 4 B x slots`` (the output
  buffer, in host memory), per model loaded; and the attention scratch of every place that runs
  a layer: the KQ mask, ``n_kv x n_ubatch`` F16 values with flash attention (``n_kv``: a
  sequence's cells, ``ctx / slots``, as lanebench passes ``-np`` and the KV is not unified),
  F32 without it plus the scores of all heads (``n_kv x n_ubatch x n_head x 4 B``). Checked on
  b11434's CPU compute buffer for the 270M at ``-c 262144``: 275.3 MiB with flash attention
  (estimate 274), 2,574.3 without (estimate 2,578), 147.3 with 2 slots (estimate 146).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from lanebench.analysis.roofline import ModelShape, TensorInfo, model_shape, read_gguf, type_nbytes
from lanebench.errors import BadInput
from lanebench.gguf import keys

MIB = 1024 * 1024
N_UBATCH = 512  # llama-server's default physical batch
COMPUTE_BASE_MIB = 8.0
ACTIVATION_COPIES = 8
_LAYER = re.compile(r"^blk\.(\d+)\.")
_EXPERTS = re.compile(r"^blk\.\d+\.ffn_(up|down|gate|gate_up)_(ch)?exps")  # common/fit.cpp's pattern


@dataclass(slots=True, frozen=True)
class LayerEstimate:
    """One repeating layer, MiB: weights outside and inside the expert tensors, and its KV."""

    dense_mib: float
    experts_mib: float = 0.0
    kv_mib: float = 0.0


@dataclass(slots=True)
class ModelEstimate:
    """One model, MiB. ``layers`` is empty when the GGUF's shape could not be read (then only
    the totals are known)."""

    weights_mib: float
    kv_mib: float
    compute_mib: float
    n_layer: int = 0
    input_mib: float = 0.0  # token embeddings and tensors outside layers: host memory
    layers: tuple[LayerEstimate, ...] = ()
    output_mib: float = 0.0  # the output layer where it runs on a device
    output_host_mib: float = 0.0  # the output layer where it stays on the host
    activations_mib: float = 0.0  # compute allowance of each place that runs layers
    attention_mib: float = 0.0  # attention scratch of each place that runs a repeating layer
    logits_mib: float = 0.0  # the output buffer (host)

    @property
    def total_mib(self) -> float:
        return self.weights_mib + self.kv_mib + self.compute_mib


@dataclass(slots=True)
class LaneEstimate:
    """Main model and (optional) draft/head; MiB."""

    main: ModelEstimate
    draft: ModelEstimate | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_mib(self) -> float:
        return self.main.total_mib + (self.draft.total_mib if self.draft else 0.0)


def _n_vocab(tensors: list[TensorInfo]) -> int:
    for t in tensors:
        if t.name in ("output.weight", "token_embd.weight") and len(t.shape) > 1:
            return t.shape[1]
    return 0


def _layer_kv_bytes(shape: ModelShape, per_seq: int, slots: int, k_type: str, v_type: str) -> list[int]:
    """KV bytes of each layer: ``slots`` sequences of ``per_seq`` cells (a window's worth on a
    sliding-window layer, ``shape.window`` already widened)."""
    out = []
    for il in range(shape.n_layer):
        cells = min(per_seq, shape.window) if shape.is_swa[il] and shape.window > 0 else per_seq
        k, v = shape.kv_row_elements(il)
        out.append(
            slots
            * cells
            * (type_nbytes(k_type, k, "KV cache type") + type_nbytes(v_type, v, "KV cache type"))
        )
    return out


def _split_weights(tensors: list[TensorInfo]) -> tuple[int, dict[int, list[int]], int, int]:
    """(input bytes, {layer: [dense, experts]}, output bytes on a device, output bytes on the host)."""
    inputs, out_norm, out_w, embd = 0, 0, None, 0
    layers: dict[int, list[int]] = {}
    for t in tensors:
        if m := _LAYER.match(t.name):
            part = layers.setdefault(int(m[1]), [0, 0])
            part[1 if _EXPERTS.match(t.name) else 0] += t.nbytes
        elif t.name.startswith("output_norm."):
            out_norm += t.nbytes
        elif t.name.startswith("output."):
            out_w = (out_w or 0) + t.nbytes
        else:
            inputs += t.nbytes
            embd += t.nbytes if t.name.startswith("token_embd.") else 0
    tied = out_w is None
    return inputs, layers, out_norm + (embd if tied else out_w or 0), out_norm + (out_w or 0)


def attention_bytes(shape: ModelShape, per_seq: int, n_head: int, flash_attn: bool) -> int:
    """The attention scratch of one place (see the module's note); ``shape.window`` widened."""
    n_kv = per_seq if not all(shape.is_swa) or shape.window <= 0 else min(per_seq, shape.window)
    if flash_attn:
        return n_kv * N_UBATCH * 2
    return n_kv * N_UBATCH * 4 * (1 + n_head)


def estimate_model(
    path: Path,
    ctx: int,
    slots: int,
    kv_type: str,
    what: str = "MODEL",
    v_type: str | None = None,
    flash_attn: bool = True,
) -> ModelEstimate:
    """Weights, KV (K as ``kv_type``, V as ``v_type`` or the same) and compute of one GGUF
    served with ``ctx`` cells over ``slots`` sequences."""
    tensors, meta = read_gguf(path, what)
    weights = sum(t.nbytes for t in tensors)
    try:
        shape = model_shape(meta)
    except BadInput:
        return ModelEstimate(weights / MIB, 0.0, COMPUTE_BASE_MIB)
    per_seq = max(ctx // max(slots, 1), 1)
    if shape.window > 0:
        shape = replace(shape, window=shape.window + N_UBATCH)
    kv = _layer_kv_bytes(shape, per_seq, slots, kv_type, v_type or kv_type)
    activations = COMPUTE_BASE_MIB * MIB + N_UBATCH * shape.n_embd * 4 * ACTIVATION_COPIES
    logits = _n_vocab(tensors) * 4 * slots
    heads = meta.get(keys.HEAD_COUNT)
    n_head = max(heads) if heads else 1
    attention = attention_bytes(shape, per_seq, n_head, flash_attn)
    inputs, parts, out_dev, out_host = _split_weights(tensors)
    n = max(shape.n_layer, max(parts, default=-1) + 1)
    layers = tuple(
        LayerEstimate(
            parts.get(il, [0, 0])[0] / MIB,
            parts.get(il, [0, 0])[1] / MIB,
            (kv[il] if il < len(kv) else 0) / MIB,
        )
        for il in range(n)
    )
    return ModelEstimate(
        weights / MIB,
        sum(kv) / MIB,
        (activations + logits + attention) / MIB,
        shape.n_layer,
        input_mib=inputs / MIB,
        layers=layers,
        output_mib=out_dev / MIB,
        output_host_mib=out_host / MIB,
        activations_mib=activations / MIB,
        attention_mib=attention / MIB,
        logits_mib=logits / MIB,
    )


def estimate_lane(
    model: Path,
    draft: Path | None,
    ctx: int,
    slots: int,
    kv_type: str,
    draft_kv: tuple[str, str] | None = None,
    flash_attn: bool = True,
) -> LaneEstimate:
    """The lane's estimate: the draft gets its own context of the same size (as llama-server),
    its cache in ``draft_kv`` (K, V) types (the lane's ``kv_type`` when None); ``flash_attn``
    False only for a lane that turns it off."""
    main = estimate_model(model, ctx, slots, kv_type, flash_attn=flash_attn)
    k, v = draft_kv or (kv_type, kv_type)
    head = estimate_model(draft, ctx, slots, k, "draft", v, flash_attn) if draft is not None else None
    return LaneEstimate(main, head)
