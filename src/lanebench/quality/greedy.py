"""Speculative lanes are lossless by construction: check it on the run's own requests (pure).

A lane with a draft (a model or an MTP head) must generate, greedily, the very token ids its
target generates alone. Both lanes of a run send the same prompts in the same order (request k
of every lane is slice k of the corpus), so the sequential requests (warm-up and single
repetitions; concurrent ones may be batched differently) are compared pairwise by the sha256 of
their generated token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lanebench.lanes import LaneSpec
from lanebench.records import RequestRecord

SEQUENTIAL = ("warmup", "single")


@dataclass(slots=True)
class GreedyCheck:
    """``identical`` is None when nothing could be compared (``why`` says why)."""

    identical: bool | None
    compared: int
    differing: int = 0
    why: str = ""


def _ids(samples: Sequence[RequestRecord]) -> list[str | None]:
    return [s.tokens_sha if s.ok else None for s in samples if s.kind in SEQUENTIAL]


def check_greedy(spec: Sequence[RequestRecord], plain: Sequence[RequestRecord]) -> GreedyCheck:
    """Compare the speculative lane's sequential requests with the plain lane's, in order."""
    pairs = [(a, b) for a, b in zip(_ids(spec), _ids(plain), strict=False) if a and b]
    if not pairs:
        return GreedyCheck(None, 0, why="no request of both lanes carried token ids")
    differing = sum(a != b for a, b in pairs)
    return GreedyCheck(differing == 0, len(pairs), differing)


def plain_partner(lane: LaneSpec, others: Sequence[LaneSpec]) -> LaneSpec | None:
    """The lane that serves the same model with the same KV cache, without drafting."""
    for other in others:
        if (
            other.draft is None
            and not other.emulated
            and other.model == lane.model
            and other.kv == lane.kv
            and other.engine == lane.engine
        ):
            return other
    return None
