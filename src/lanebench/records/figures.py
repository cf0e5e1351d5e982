"""The figures lanebench measures: one table of key, label, unit and which way is better.

Every module that names a figure (summaries, tables, comparisons, plots, tune's goals) takes it
from here, so a figure is added or renamed in one place. ``Fig`` values are the keys used in
summaries, JSON and the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fig(StrEnum):
    PREFILL = "prefill_tps"
    DECODE = "decode_tps"
    PREFILL_CLIENT = "prefill_client_tps"
    DECODE_CLIENT = "decode_client_tps"
    WALL = "wall_s"
    NORMALIZED_WALL = "normalized_wall_s"
    AGGREGATE = "aggregate_tps"
    ACCEPTANCE = "acceptance"
    MEAN_ACCEPTED_LENGTH = "mean_accepted_length"
    # quality against the reference lane (llama-perplexity); values with ± errors, not medians
    KLD_MEAN = "kld_mean"
    SAME_TOP1 = "same_top1"
    PPL = "ppl"


@dataclass(frozen=True, slots=True)
class Figure:
    key: Fig
    label: str
    unit: str
    higher_is_better: bool
    view: str = "engine"  # whose clock: the engine's own timings, the client's, or derived

    @property
    def better(self) -> int:
        """+1 when higher is better, -1 when lower is."""
        return 1 if self.higher_is_better else -1


_ALL = (
    Figure(Fig.PREFILL, "Prefill", "tok/s", True),
    Figure(Fig.DECODE, "Decode", "tok/s", True),
    Figure(Fig.NORMALIZED_WALL, "Normalized wall", "s", False, "derived"),
    Figure(Fig.AGGREGATE, "N-slot aggregate", "tok/s", True, "client"),
    Figure(Fig.WALL, "Measured wall", "s", False, "client"),
    Figure(Fig.PREFILL_CLIENT, "Prefill (client)", "tok/s", True, "client"),
    Figure(Fig.DECODE_CLIENT, "Decode (client)", "tok/s", True, "client"),
    Figure(Fig.ACCEPTANCE, "Acceptance", "", True),
    Figure(Fig.MEAN_ACCEPTED_LENGTH, "Mean accepted length", "tokens", True),
    Figure(Fig.KLD_MEAN, "Mean KLD vs reference", "nats/token", False, "quality"),
    Figure(Fig.SAME_TOP1, "Same top-1 as reference", "%", True, "quality"),
    Figure(Fig.PPL, "Perplexity", "", False, "quality"),
)
SPEED = tuple(f.key for f in _ALL if f.view != "quality")  # figures summarised as median (min–max)
FIGURES: dict[Fig, Figure] = {f.key: f for f in _ALL}


def label(key: Fig, with_unit: bool = True) -> str:
    f = FIGURES[key]
    return f"{f.label} ({f.unit})" if with_unit and f.unit else f.label
