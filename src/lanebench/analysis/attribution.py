"""The attribution experiment's record and its reading (pure).

``run --attribute`` measures, for one lane, a few requests of its job on fresh servers: the lane
as it runs (the *control*, once before and once after the variants, pooled), and the lane with
one suspect switched off (``engines.suspects``) per *variant*. Every request is kept
(``RequestRecord``), so the reading below can be redone from the raw samples.

**The cause rule.** A variant *moved* a figure when the range (min–max) of its requests and the
range of the pooled control requests do not overlap, with at least ``MIN_N`` requests on each
side. With no real effect, ranges of n control and m variant requests separate by chance with
probability 2 / C(n + m, m) (0.07% with the defaults: 10 control, 5 variant; 2.4% with 6 and 3).
A control that moved between its two runs (the machine drifted) widens the pooled range instead
of passing for an effect (a load that comes and goes can still fool the rule). Only a suspect
whose switch moved a figure, in the direction of saving time, is named as a cause; the rest of a
gap stays "unattributed".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lanebench.analysis import metrics as m
from lanebench.records.attribution import CONTROL, CONTROL_AFTER, Arm, AttributionRecord, Effect
from lanebench.records.samples import RequestRecord, Stat

MIN_N = 3  # requests per side below which the rule does not tell


@dataclass(frozen=True, slots=True)
class AttrFigure:
    """A per-request figure the experiment compares. ``tokens``: 'n_in'/'n_out' for a rate in
    tok/s (its change in ms per request is tokens/variant − tokens/control), '' for a time in ms."""

    key: str
    label: str
    unit: str
    value: Callable[[RequestRecord], float | None]
    tokens: str = ""


def _ttft_ms(r: RequestRecord) -> float | None:
    return 1000 * r.ttft_s if r.ok and r.ttft_s else None


def outside_ms(r: RequestRecord) -> float | None:
    """Milliseconds the client waited for its first token beyond the engine's prompt timer."""
    if not r.ok or not r.ttft_s or "prompt_ms" not in r.timings:
        return None
    return 1000 * r.ttft_s - float(r.timings["prompt_ms"])


FIGURES: tuple[AttrFigure, ...] = (
    AttrFigure("engine_prefill_tps", "Engine prefill", "tok/s", m.engine_prefill_tps, "n_in"),
    AttrFigure("client_prefill_tps", "Client prefill", "tok/s", m.client_prefill_tps, "n_in"),
    AttrFigure("ttft_ms", "Time to first token", "ms", _ttft_ms),
    AttrFigure("outside_ms", "Outside the prompt timer", "ms", outside_ms),
    AttrFigure("engine_decode_tps", "Engine decode", "tok/s", m.engine_decode_tps, "n_out"),
    AttrFigure("client_decode_tps", "Client decode", "tok/s", m.client_decode_tps, "n_out"),
)
BY_KEY = {f.key: f for f in FIGURES}


def separated(a: Stat | None, b: Stat | None) -> bool | None:
    """The cause rule: the two ranges do not overlap (None below ``MIN_N`` on either side)."""
    if a is None or b is None or a.n < MIN_N or b.n < MIN_N:
        return None
    return a.max < b.min or b.max < a.min


def figure_stat(fig: AttrFigure, records: list[RequestRecord]) -> Stat | None:
    """Median (min–max) of one figure over requests."""
    return m.stat(fig.value(r) for r in records)


def _saved_ms(fig: AttrFigure, rec: AttributionRecord, control: Stat, variant: Stat) -> float | None:
    if not fig.tokens:
        return control.median - variant.median
    tokens = rec.n_in if fig.tokens == "n_in" else rec.n_out
    if control.median <= 0 or variant.median <= 0:
        return None
    return 1000 * (tokens / control.median - tokens / variant.median)


def effect(rec: AttributionRecord, arm: Arm, fig: AttrFigure) -> Effect:
    """One suspect's effect on one figure, against the pooled control."""
    control, variant = figure_stat(fig, rec.control()), figure_stat(fig, arm.measured())
    saved = pct = None
    if control is not None and variant is not None:
        saved = _saved_ms(fig, rec, control, variant)
        pct = 100 * (variant.median / control.median - 1) if control.median else None
    return Effect(
        arm.name,
        arm.label,
        " ".join(arm.change),
        fig.key,
        control,
        variant,
        saved,
        pct,
        separated(control, variant),
    )


def effects(rec: AttributionRecord) -> list[Effect]:
    """Every variant's effect on every figure, in the order of ``FIGURES``."""
    return [effect(rec, arm, fig) for arm in rec.variants() for fig in FIGURES]


def same_tokens(rec: AttributionRecord, arm: Arm) -> bool | None:
    """Whether ``arm`` generated the control's tokens for every request both measured (same
    prompt order, greedy; sha256 of the token ids); None when nothing can be compared."""
    control = next((a for a in rec.arms if a.name == CONTROL), None)
    if control is None:
        return None
    theirs = {r.rep: r.tokens_sha for r in control.measured() if r.tokens_sha}
    pairs = [(theirs[r.rep], r.tokens_sha) for r in arm.measured() if r.tokens_sha and r.rep in theirs]
    return all(a == b for a, b in pairs) if pairs else None


def conclude(rec: AttributionRecord) -> AttributionRecord:
    """``rec`` with its reading filled from its arms (``effects``, ``drift``, ``same_tokens``)."""
    rec.effects = effects(rec)
    rec.drift = drift(rec)
    rec.same_tokens = {a.name: same_tokens(rec, a) for a in rec.variants()}
    return rec


def drift(rec: AttributionRecord) -> list[str]:
    """The figures on which the control moved between its run before and after the variants."""
    before = next((a for a in rec.arms if a.name == CONTROL), None)
    after = next((a for a in rec.arms if a.name == CONTROL_AFTER), None)
    if before is None or after is None:
        return []
    return [
        f.key
        for f in FIGURES
        if separated(figure_stat(f, before.measured()), figure_stat(f, after.measured())) is True
    ]


# Which figure shows each step of "where the time goes", and which way a cost moves it.
STEP_FIGURE = {
    ("prefill", "kernel_to_engine"): "engine_prefill_tps",
    ("prefill", "engine_to_client"): "outside_ms",
    ("decode", "kernel_to_engine"): "engine_decode_tps",
    ("decode", "engine_to_client"): "client_decode_tps",
}


def causes(rec: AttributionRecord | None, figure: str, step: str) -> list[Effect]:
    """The suspects shown to cost time in one step: their switch moved the step's figure beyond
    the noise (``separated``) and saved time. For the engine → client step of decode, a suspect
    that also moved the engine's own decode is the engine's cause, not the stream's."""
    if rec is None:
        return []
    key = STEP_FIGURE[(figure, step)]
    out = []
    for arm in rec.variants():
        e = effect(rec, arm, BY_KEY[key])
        if not (e.moved and e.saved_ms is not None and e.saved_ms > 0):
            continue
        if key == "client_decode_tps" and effect(rec, arm, BY_KEY["engine_decode_tps"]).moved:
            continue
        out.append(e)
    return out


def tested(rec: AttributionRecord | None) -> int:
    """How many suspects the experiment measured (arms without an error)."""
    return 0 if rec is None else sum(1 for a in rec.variants() if a.error is None and a.measured())
