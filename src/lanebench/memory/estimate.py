"""A lane's memory, estimated from its GGUF files before anything starts (pure but for reading
the GGUF headers).

- weights: the tensor bytes of the main model, plus those of the draft model or MTP head;
- KV: per layer, K and V rows of the lane's KV type for every cell; llama-server gives each of
  ``slots`` sequences ``ctx / slots`` cells, a sliding-window layer ``min(ctx / slots, window +
  n_ubatch)`` (``roofline.kv_bytes_per_token`` with the window widened by the batch);
- compute: a stated allowance, ``COMPUTE_BASE_MIB`` + ``n_ubatch x n_embd x 4 B x 8``
  (activations) + ``n_vocab x 4 B x slots`` (the output buffer), per model loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from lanebench.errors import BadInput
from lanebench.roofline import TensorInfo, kv_bytes_per_token, model_shape, read_gguf

MIB = 1024 * 1024
N_UBATCH = 512  # llama-server's default physical batch
COMPUTE_BASE_MIB = 8.0
ACTIVATION_COPIES = 8


@dataclass(slots=True)
class ModelEstimate:
    weights_mib: float
    kv_mib: float
    compute_mib: float
    n_layer: int = 0

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


def estimate_model(path: Path, ctx: int, slots: int, kv_type: str, what: str = "MODEL") -> ModelEstimate:
    """Weights, KV and compute of one GGUF served with ``ctx`` cells over ``slots`` sequences."""
    tensors, meta = read_gguf(path, what)
    weights = sum(t.nbytes for t in tensors)
    try:
        shape = model_shape(meta)
    except BadInput:
        return ModelEstimate(weights / MIB, 0.0, COMPUTE_BASE_MIB)
    per_seq = max(ctx // max(slots, 1), 1)
    if shape.window > 0:
        shape = replace(shape, window=shape.window + N_UBATCH)
    kv = slots * kv_bytes_per_token(shape, per_seq, kv_type)
    compute = COMPUTE_BASE_MIB * MIB + N_UBATCH * shape.n_embd * 4 * ACTIVATION_COPIES
    compute += _n_vocab(tensors) * 4 * slots
    return ModelEstimate(weights / MIB, kv / MIB, compute / MIB, shape.n_layer)


def estimate_lane(model: Path, draft: Path | None, ctx: int, slots: int, kv_type: str) -> LaneEstimate:
    """The lane's estimate: the draft gets its own context of the same size (as llama-server)."""
    main = estimate_model(model, ctx, slots, kv_type)
    head = estimate_model(draft, ctx, slots, kv_type, "draft") if draft is not None else None
    return LaneEstimate(main, head)


def device_share(gpu_layers: int | None, n_layer: int) -> float:
    """Share of the lane placed on the GPU: 0 without -ngl, 1 for -1 or >= n_layer."""
    if not gpu_layers:
        return 0.0
    if gpu_layers < 0 or n_layer <= 0 or gpu_layers >= n_layer:
        return 1.0
    return gpu_layers / n_layer
