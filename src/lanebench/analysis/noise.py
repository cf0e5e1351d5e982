"""Is one lane better than another at a figure, or is the difference inside the noise? One rule,
pure (samples in, verdict out, no I/O), used wherever lanebench ranks lanes: ``tune``'s final
choice, ``compare``'s rows, the report's sweep tables (and, later, the envelope's winner map).

The rule, the **min–max separation test**: B is measurably better than A when every repetition
of B is better than every repetition of A (their min–max ranges do not overlap; touching ranges
overlap) *and* so complete a separation is unlikely by chance. If the ``n_a + n_b`` samples were
exchangeable (no difference between the lanes), all of one lane's samples would lie beyond all of
the other's in either direction with probability ``2 / C(n_a + n_b, n_a)``: the exact
Mann–Whitney rank test at its most extreme value (U = 0). That chance must be at most ``alpha``
(default 0.10). So 3 against 3 repetitions can show a difference (p = 0.10), 3 against 4 too
(p = 0.057); 2 against 2 (p = 0.33), 2 against 3 (p = 0.20) or 1 against fewer than 19 cannot,
and the verdict says so instead of naming a winner. No distribution is assumed: with three
repetitions a normal-theory interval would be mostly assumption.

The margin's uncertainty is the range of the ratio B/A over every pair of samples,
``min(B)/max(A)`` to ``max(B)/min(A)``; it excludes 1 exactly when the ranges do not overlap.

What the rule cannot see: drift between lanes measured minutes apart (a busy or warming machine)
is not in any one lane's spread. ``min_margin`` (a share, e.g. 0.05) makes a separation smaller
than that margin "no measurable difference" too; the default 0 trusts the spreads alone.

Only the median, min, max and count of each side enter the rule, so ``judge_stats`` gives the
same verdict from summaries (``records.Stat``) when the raw samples are not at hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lanebench.analysis.metrics import stat
from lanebench.records.samples import Stat

ALPHA = 0.10  # the largest chance of a separation (both directions) that still names a winner
TEST_NAME = "min–max ranges"


class Side(StrEnum):
    A = "A"
    B = "B"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of comparing B with A at one figure.

    ``better``: the side measurably better, or None (no measurable difference, or nothing to
    judge). ``ratio``: median(B) / median(A), with ``ratio_low``–``ratio_high`` its range over
    every pair of samples (None where A has a value <= 0 or a side is empty). ``p_chance``: the
    probability of a separation this complete with no difference, ``2 / C(n_a + n_b, n_a)``.
    ``test``: the words a table prints after the outcome."""

    better: Side | None
    ratio: float | None
    ratio_low: float | None
    ratio_high: float | None
    test: str
    n_a: int
    n_b: int
    p_chance: float | None = None
    judged: bool = True  # False when a side has no samples: nothing was compared

    @property
    def measurable(self) -> bool:
        return self.better is not None

    @property
    def outcome(self) -> str:
        """``B better`` / ``B worse`` / ``no measurable difference`` / ``no spread to judge`` /
        ``nothing to compare`` (worse = A better)."""
        if not self.judged:
            return "nothing to compare"
        if self.better is None:
            return "no spread to judge" if self.n_a < 2 and self.n_b < 2 else "no measurable difference"
        return "B better" if self.better == Side.B else "B worse"

    def ratio_text(self, digits: int = 3, unit: str = "") -> str:
        """``1.012 (0.951–1.076)`` (``unit`` after the ratio: ``1.012× (…)``); ``–`` without one."""
        if self.ratio is None:
            return "–"
        text = f"{self.ratio:.{digits}f}{unit}"
        if self.ratio_low is not None and self.ratio_high is not None and self.ratio_high > self.ratio_low:
            text += f" ({self.ratio_low:.{digits}f}–{self.ratio_high:.{digits}f})"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["better"] = str(self.better) if self.better else None
        d["outcome"] = self.outcome
        return d


def _p_chance(n_a: int, n_b: int) -> float:
    """Chance that one side's samples all lie beyond the other's, either way, with no difference."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def _reps(n_a: int, n_b: int) -> str:
    return f"{n_a} vs {n_b} reps"


def _ratio_range(a: Stat, b: Stat) -> tuple[float | None, float | None, float | None]:
    ratio = b.median / a.median if a.median != 0 else None
    if a.min <= 0 or b.min < 0:
        return ratio, None, None
    return ratio, b.min / a.max, b.max / a.min


def judge_stats(
    a: Stat | None,
    b: Stat | None,
    higher_is_better: bool = True,
    alpha: float = ALPHA,
    min_margin: float = 0.0,
) -> Verdict:
    """The verdict from two summaries (median, min, max, n): the same rule as ``judge``."""
    if a is None or b is None or a.n < 1 or b.n < 1:
        missing = "A" if a is None or a.n < 1 else "B"
        return Verdict(None, None, None, None, f"no samples for {missing}", a.n if a else 0, b.n if b else 0,
                       judged=False)  # fmt: skip
    ratio, lo, hi = _ratio_range(a, b)
    reps = _reps(a.n, b.n)
    if a.n < 2 and b.n < 2:
        return Verdict(None, ratio, lo, hi, "1 sample each", a.n, b.n)
    p = _p_chance(a.n, b.n)
    if b.min <= a.max and a.min <= b.max:
        return Verdict(None, ratio, lo, hi, f"{TEST_NAME} overlap, {reps}", a.n, b.n)
    if p > alpha:
        test = f"{TEST_NAME} apart, but {reps} cannot show it: p = {p:.2f} by chance > {alpha:.2f}"
        return Verdict(None, ratio, lo, hi, test, a.n, b.n, p)
    b_higher = b.min > a.max
    low, high = sorted((a.median, b.median))
    margin = (high - low) / abs(low) if low != 0 else math.inf
    if margin < min_margin:
        test = f"{TEST_NAME} apart, but by {100 * margin:.1f}% < the {100 * min_margin:g}% minimum margin"
        return Verdict(None, ratio, lo, hi, test, a.n, b.n, p)
    better = Side.B if b_higher == higher_is_better else Side.A
    return Verdict(better, ratio, lo, hi, f"{TEST_NAME} apart, {reps}, p = {p:.2f} by chance", a.n, b.n, p)


def judge(
    a: Sequence[float],
    b: Sequence[float],
    higher_is_better: bool = True,
    alpha: float = ALPHA,
    min_margin: float = 0.0,
) -> Verdict:
    """Compare B's repetition samples of a figure with A's (``higher_is_better`` says which way
    is better: True for rates, False for times). See the module docstring for the rule."""
    return judge_stats(stat(a), stat(b), higher_is_better, alpha, min_margin)


@dataclass(slots=True)
class Standing:
    """Several lanes at one figure: the leader by median, the lanes that are not measurably worse
    than it (``tied``, the leader excluded), and each other lane's verdict against the leader
    (A = the leader, B = the lane). ``leader`` is None when no lane has samples."""

    leader: str | None
    tied: list[str] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        """True when the leader is measurably better than every other lane."""
        return self.leader is not None and not self.tied

    def to_dict(self) -> dict[str, Any]:
        return {
            "leader": self.leader,
            "tied": list(self.tied),
            "verdicts": {k: v.to_dict() for k, v in self.verdicts.items()},
        }


def standing(
    figures: Mapping[str, Stat | None],
    higher_is_better: bool = True,
    alpha: float = ALPHA,
    min_margin: float = 0.0,
) -> Standing:
    """Rank lanes (name -> summary of a figure's samples, in the caller's order; the first of
    equal medians leads) and judge every other lane against the leader."""
    present = [(name, s) for name, s in figures.items() if s is not None and s.n > 0]
    if not present:
        return Standing(None)
    sign = 1 if higher_is_better else -1
    leader, best = max(present, key=lambda ns: sign * ns[1].median)  # max keeps the first of equals
    out = Standing(leader)
    for name, s in present:
        if name == leader:
            continue
        v = judge_stats(best, s, higher_is_better, alpha, min_margin)
        out.verdicts[name] = v
        if not v.measurable:
            out.tied.append(name)
    return out


def samples_standing(
    samples: Mapping[str, Sequence[float]],
    higher_is_better: bool = True,
    alpha: float = ALPHA,
    min_margin: float = 0.0,
) -> Standing:
    """``standing`` from raw repetition samples per lane."""
    return standing({k: stat(v) for k, v in samples.items()}, higher_is_better, alpha, min_margin)


def no_difference_text(name_a: str, name_b: str, v: Verdict) -> str:
    """``no measurable difference between A and B (B/A = 1.010 (0.951–1.076); min–max ranges
    overlap, 3 vs 3 reps)``, with the lanes' names for A and B."""
    return (
        f"no measurable difference between {name_a} and {name_b} "
        f"({name_b} / {name_a} = {v.ratio_text()}; {v.test})"
    )
