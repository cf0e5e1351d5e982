"""Model shapes: Gemma 4 main models and their assistant (MTP) heads, real and tiny.

Real shapes come from the published configs (FACTS.md): 12B, 26B-A4B, 31B, each with its
4-layer, 1024-wide assistant head. Tiny shapes keep every structural feature (sliding +
full layers with different head sizes, K=V full attention, MoE experts) at sizes that load
and run in seconds on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lanebench.errors import BadInput

SWA = "sliding_attention"
FULL = "full_attention"
GEMMA4_VOCAB = 262144


@dataclass(frozen=True, slots=True)
class MainShape:
    """A ``gemma4`` main model: widths in elements, counts in units."""

    name: str
    hidden: int
    layer_types: tuple[str, ...]
    n_head: int
    n_kv_swa: int
    n_kv_full: int
    head_dim_swa: int
    head_dim_full: int
    ffn: int
    n_expert: int = 0
    n_expert_used: int = 0
    expert_ffn: int = 0
    k_eq_v: bool = True
    sliding_window: int = 1024
    vocab: int = GEMMA4_VOCAB
    context: int = 131072
    rope_base: float = 1_000_000.0
    rope_base_swa: float = 10_000.0
    partial_rotary_full: float = 0.25
    rms_eps: float = 1e-6
    softcap: float = 30.0

    @property
    def n_layer(self) -> int:
        return len(self.layer_types)

    def kv_heads(self) -> list[int]:
        return [self.n_kv_swa if t == SWA else self.n_kv_full for t in self.layer_types]


@dataclass(frozen=True, slots=True)
class HeadShape:
    """An assistant head; attention geometry (heads, KV heads, head sizes) follows its main."""

    hidden: int
    layer_types: tuple[str, ...]
    ffn: int

    @property
    def n_layer(self) -> int:
        return len(self.layer_types)


def _pattern(n_layer: int, every: int) -> tuple[str, ...]:
    """``every``-th layer full attention, the rest sliding (Gemma's 5:1 pattern for 6)."""
    return tuple(FULL if (i + 1) % every == 0 else SWA for i in range(n_layer))


HEAD_REAL = HeadShape(hidden=1024, layer_types=(SWA, SWA, SWA, FULL), ffn=8192)

PRESETS: dict[str, tuple[MainShape, HeadShape]] = {
    "12b": (
        MainShape("gemma-4-12B", 3840, _pattern(48, 6), 16, 8, 1, 256, 512, 15360),
        HEAD_REAL,
    ),
    "26b-a4b": (
        MainShape(
            "gemma-4-26B-A4B",
            2816,
            _pattern(30, 6),
            16,
            8,
            2,
            256,
            512,
            2112,
            n_expert=128,
            n_expert_used=8,
            expert_ffn=704,
        ),
        HEAD_REAL,
    ),
    "31b": (
        MainShape("gemma-4-31B", 5376, _pattern(60, 6), 32, 16, 4, 256, 512, 21504),
        HEAD_REAL,
    ),
    "tiny": (
        MainShape("tiny-gemma4", 128, (SWA, FULL), 2, 1, 1, 32, 64, 256, sliding_window=64),
        HeadShape(hidden=64, layer_types=(SWA, FULL), ffn=128),
    ),
    "tiny-moe": (
        MainShape(
            "tiny-gemma4-moe",
            128,
            (SWA, FULL),
            2,
            1,
            1,
            32,
            64,
            128,
            sliding_window=64,
            n_expert=4,
            n_expert_used=2,
            expert_ffn=64,
        ),
        HeadShape(hidden=64, layer_types=(SWA, FULL), ffn=128),
    ),
}


def preset(name: str) -> tuple[MainShape, HeadShape]:
    """The named preset; BadInput listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise BadInput(f"--preset {name!r} is unknown; known: {', '.join(PRESETS)}") from None


def with_overrides(main: MainShape, **changes: int | None) -> MainShape:
    """``main`` with the non-None fields of ``changes`` replaced."""
    kept: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    return replace(main, **kept)
