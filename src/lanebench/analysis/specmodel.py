"""The standard model of speculative decoding, and advice drawn from a measured run.

Model (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding"):
each drafted token is accepted with probability ``alpha``, independently, until the first
rejection. A verification step with ``n`` drafted tokens yields

    E[tokens/step](alpha, n) = (1 - alpha**(n+1)) / (1 - alpha)

tokens (the accepted ones plus the target's own next token) and costs ``1 + n*c`` target-token
times, where ``c`` is the draft's cost per drafted token relative to one plain target token.
So ``speed-up(n) = E[tokens/step](alpha, n) / (1 + n*c)``. A draft block size B drafts
``n = B - 1`` tokens. All functions are pure; ``advise`` reads a run document
(``lanebench run --json``) and never touches files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord

MAX_BLOCK_SIZE = 33  # the largest block size a lane accepts (lanes.Draft.block_size)


def expected_tokens_per_step(alpha: float, n: int) -> float:
    """Expected tokens generated per verification step with ``n`` drafted tokens."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if n < 0:
        raise ValueError(f"draft length must be >= 0, got {n}")
    if alpha == 1.0:
        return float(n + 1)
    return (1.0 - alpha ** (n + 1)) / (1.0 - alpha)


def speedup(alpha: float, n: int, cost: float) -> float:
    """Decode speed-up over the plain target: E[tokens/step] / (1 + n * cost)."""
    if cost < 0:
        raise ValueError(f"draft cost must be >= 0, got {cost}")
    return expected_tokens_per_step(alpha, n) / (1.0 + n * cost)


def best_block_size(alpha: float, cost: float, max_block: int = MAX_BLOCK_SIZE) -> tuple[int, float]:
    """Block size B (= n + 1) in 1..max_block that maximises the speed-up, and that speed-up.

    B = 1 means "do not draft" (speed-up 1). Ties go to the smaller block.
    """
    best = (1, 1.0)
    for block in range(2, max_block + 1):
        s = speedup(alpha, block - 1, cost)
        if s > best[1] + 1e-12:
            best = (block, s)
    return best


def alpha_from_tokens_per_step(tokens_per_step: float, n: float) -> float:
    """Per-token acceptance alpha under which the model yields ``tokens_per_step`` at draft length n.

    Solves ``(1 - a**(n+1)) / (1 - a) = tokens_per_step`` by bisection (the left side rises
    with ``a``); ``n`` may be fractional (a mean drafted length).
    """
    if n <= 0:
        raise ValueError("draft length must be > 0")
    target = min(max(tokens_per_step, 1.0), n + 1.0)

    def tokens(a: float) -> float:
        return n + 1.0 if a >= 1.0 else (1.0 - a ** (n + 1.0)) / (1.0 - a)

    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if tokens(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(slots=True)
class Advice:
    """What the model says about one drafting lane. Rates are tokens/s; costs are ratios."""

    lane: str
    block_size: int
    draft_n: int
    acceptance: float | None = None
    drafted_per_step: float | None = None
    tokens_per_step: float | None = None
    alpha: float | None = None
    expected_tokens_per_step: float | None = None
    plain_lane: str | None = None
    decode_tps: float | None = None
    plain_decode_tps: float | None = None
    step_cost_ratio: float | None = None
    draft_cost: float | None = None
    measured_speedup: float | None = None
    model_speedup: float | None = None
    best_block_size: int | None = None
    best_speedup: float | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(lane: LaneResult, key: Fig) -> float | None:
    stat = lane.summary.get(key)
    return stat.median if stat is not None else None


def draft_counts(samples: Sequence[RequestRecord]) -> tuple[int, int, int]:
    """(generated, drafted, accepted) tokens over the successful single-stream samples (an
    envelope's: its one-stream turns, as ``LaneResult.measured_singles`` picks them)."""
    gen = drafted = accepted = 0
    for s in samples:
        if s.kind not in ("single", "cell") or not s.ok:
            continue
        gen += int(s.timings.get("predicted_n", 0) or 0)
        drafted += s.draft_n
        accepted += s.draft_n_accepted
    return gen, drafted, accepted


def plain_partner(lane: LaneResult, lanes: Sequence[LaneResult]) -> LaneResult | None:
    """The plain (non-drafting) lane of the same model, preferring the same KV type."""
    spec = lane.lane
    plain = [
        other
        for other in lanes
        if other.lane.draft is None and other.lane.model == spec.model and _median(other, Fig.DECODE)
    ]
    plain.sort(key=lambda o: o.lane.kv != spec.kv)
    return plain[0] if plain else None


def _measure(adv: Advice, lane: LaneResult) -> None:
    """Fill acceptance, drafted and generated tokens per step from the raw samples."""
    gen, drafted, accepted = draft_counts(lane.measured_singles())
    # every decode step emits exactly one token of the target's own plus the accepted drafts
    steps = gen - accepted
    if drafted <= 0 or steps <= 0:
        adv.notes.append("no drafted tokens in the samples: the engine did not speculate")
        return
    adv.acceptance = accepted / drafted
    adv.drafted_per_step = drafted / steps
    adv.tokens_per_step = gen / steps
    adv.alpha = alpha_from_tokens_per_step(adv.tokens_per_step, adv.drafted_per_step)
    adv.expected_tokens_per_step = expected_tokens_per_step(adv.alpha, adv.draft_n)


def _cost(adv: Advice, lane: LaneResult, plain: LaneResult | None) -> None:
    """Draft cost from the drafting lane's time per step against the plain lane's time per token."""
    adv.decode_tps = _median(lane, Fig.DECODE)
    if plain is None:
        adv.notes.append("no plain lane of the same model in this run: the draft's cost is unknown")
        return
    adv.plain_lane = plain.name
    adv.plain_decode_tps = _median(plain, Fig.DECODE)
    if not adv.decode_tps or not adv.plain_decode_tps or not adv.tokens_per_step:
        return
    adv.measured_speedup = adv.decode_tps / adv.plain_decode_tps
    adv.step_cost_ratio = adv.tokens_per_step / adv.measured_speedup
    raw = (adv.step_cost_ratio - 1.0) / (adv.drafted_per_step or 1.0)
    if raw < 0:
        adv.notes.append(f"measured draft cost {raw:.3f} < 0 (noise or a faster verify); using 0")
    adv.draft_cost = max(raw, 0.0)


def advise_lane(lane: LaneResult, lanes: Sequence[LaneResult]) -> Advice:
    """The speculative model applied to one drafting lane of a run."""
    block = lane.lane.draft.block_size if lane.lane.draft else 3
    adv = Advice(lane=lane.name, block_size=block, draft_n=block - 1)
    _measure(adv, lane)
    if adv.alpha is None:
        return adv
    _cost(adv, lane, plain_partner(lane, lanes))
    if adv.draft_cost is None:
        return adv
    adv.model_speedup = speedup(adv.alpha, adv.draft_n, adv.draft_cost)
    adv.best_block_size, adv.best_speedup = best_block_size(adv.alpha, adv.draft_cost)
    adv.curve = [(b, speedup(adv.alpha, b - 1, adv.draft_cost)) for b in range(2, MAX_BLOCK_SIZE + 1)]
    if adv.best_block_size == 1:
        adv.notes.append("at this acceptance and cost no block size beats plain decoding")
    return adv


def advise(lanes: Sequence[LaneResult]) -> list[Advice]:
    """Advice for every drafting lane of a run."""
    return [advise_lane(lane, lanes) for lane in lanes if lane.lane.draft is not None]
