"""``advise`` by emulation: a drafting lane's cost, measured once, predicts its speed anywhere.

A lane with a real head (or draft model) is run twice: as its plain model, and drafting with
acceptance *emulated* at a fixed geometric profile (``draft.emulate`` = α, α², ...; the build
accepts at random at those rates). The speculative model (``specmodel``) then fits the draft's
cost c from the two speeds, and predicts decode at any acceptance α and block size B:
``plain × E[tokens/step](α, B−1) / (1 + (B−1)·c)``. Emulated runs at other profiles check the
prediction. Nothing here depends on the head being any good: a random head of the real shape
costs what the real one costs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lanebench.analysis.specmodel import Advice, advise_lane, speedup
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.errors import BadInput
from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult, LaneStatus

ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
BLOCKS = (2, 3, 4, 5, 6)
Measure = Callable[[Sequence[LaneSpec], RunConfig], list[LaneResult]]


def geometric_rates(alpha: float, n: int) -> list[float]:
    """Unconditional per-position rates α, α², ... (position i is accepted with α given i−1)."""
    return [round(alpha ** (i + 1), 6) for i in range(n)]


def pick_lane(lanes: Sequence[LaneSpec], name: str | None) -> LaneSpec:
    drafting = [lane for lane in lanes if lane.draft is not None]
    if name is not None:
        for lane in lanes:
            if lane.name == name:
                if lane.draft is None:
                    raise BadInput(f"--lane {name!r}: this lane has no draft to advise on")
                return lane
        raise BadInput(
            f"--lane {name!r}: no such lane (drafting lanes: {', '.join(x.name for x in drafting)})"
        )
    if not drafting:
        raise BadInput("LANES: no lane with a draft: nothing to advise on")
    return drafting[0]


def plain_of(lane: LaneSpec) -> LaneSpec:
    return lane.model_copy(update={"name": f"{lane.name} [plain]", "draft": None})


def emulated_at(lane: LaneSpec, alpha: float) -> LaneSpec:
    """The lane drafting at emulated acceptance α (p_min 0, so every round drafts B−1 tokens)."""
    assert lane.draft is not None
    n = lane.draft.block_size - 1
    draft = lane.draft.model_copy(
        update={"emulate": geometric_rates(alpha, n), "emulate_mean_length": None, "p_min": 0.0}
    )
    return lane.model_copy(update={"name": f"{lane.name} [emulated α={alpha:g}]", "draft": draft})


@dataclass(slots=True)
class Check:
    alpha: float
    predicted_tps: float | None
    measured_tps: float | None
    measured_min: float | None = None
    measured_max: float | None = None

    @property
    def error(self) -> float | None:
        if not self.predicted_tps or not self.measured_tps:
            return None
        return self.measured_tps / self.predicted_tps - 1


@dataclass(slots=True)
class EmulatedAdvice:
    lane: str
    block_size: int
    profile: float
    plain_decode_tps: float | None = None
    fit_noise: float = 0.0  # relative min–max spread of the plain and fitted lanes' decode, summed
    fitted: Advice | None = None
    grid: dict[int, dict[float, float]] = field(default_factory=dict)  # B -> α -> predicted tok/s
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def predict(self, alpha: float, block: int) -> float | None:
        c = self.fitted.draft_cost if self.fitted else None
        if c is None or not self.plain_decode_tps:
            return None
        return self.plain_decode_tps * (speedup(alpha, block - 1, c) if block > 1 else 1.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checks"] = [{**asdict(c), "error": c.error} for c in self.checks]
        return d


def _spread(result: LaneResult | None) -> float:
    stat = result.summary.get(Fig.DECODE) if result else None
    return (stat.max - stat.min) / stat.median if stat is not None and stat.median else 0.0


def _decode(result: LaneResult | None) -> float | None:
    stat = result.summary.get(Fig.DECODE) if result else None
    return stat.median if stat is not None else None


def advise_by_emulation(
    lane: LaneSpec,
    opts: RunConfig,
    measure: Measure,
    *,
    profile: float = 0.8,
    check: Sequence[float] = (),
) -> EmulatedAdvice:
    """Measure plain + emulated-at-``profile`` (+ one lane per ``check`` α) in one run; fit c."""
    assert lane.draft is not None
    for a in (profile, *check):
        if not 0.0 <= a <= 1.0:
            raise BadInput(f"--profile/--check: expected acceptance between 0 and 1, got {a:g}")
    block = lane.draft.block_size
    out = EmulatedAdvice(lane=lane.name, block_size=block, profile=profile)
    plain, fit = plain_of(lane), emulated_at(lane, profile)
    checks = [emulated_at(lane, a) for a in check]
    results = {r.name: r for r in measure([plain, fit, *checks], opts)}
    for r in results.values():
        if r.status == LaneStatus.FAILED:
            out.notes.append(f"{r.name}: failed: {r.error}")
    plain_r, fit_r = results.get(plain.name), results.get(fit.name)
    out.plain_decode_tps = _decode(plain_r)
    if plain_r is None or fit_r is None or out.plain_decode_tps is None:
        out.notes.append("the plain or the emulated lane gave no decode figure: nothing to fit")
        return out
    # a prediction carries the noise of both speeds it was fitted from
    out.fit_noise = _spread(plain_r) + _spread(fit_r)
    # the plain lane is the emulated lane's partner: same model, same KV type
    out.fitted = advise_lane(fit_r, [plain_r, fit_r])
    out.notes += out.fitted.notes
    if out.fitted.draft_cost is None:
        return out
    out.grid = {b: {a: p for a in ALPHAS if (p := out.predict(a, b)) is not None} for b in BLOCKS}
    for a, spec in zip(check, checks, strict=True):
        got = results.get(spec.name)
        stat = got.summary.get(Fig.DECODE) if got else None
        out.checks.append(
            Check(
                a,
                out.predict(a, block),
                stat.median if stat else None,
                stat.min if stat else None,
                stat.max if stat else None,
            )
        )
    return out
