"""Where each lane wins (pure): for every (depth, concurrency) cell the fastest lane at a figure,
its margin over the runner-up with that margin's range, or "no measurable difference" when the
margin is inside the noise (``analysis.noise``: the min–max separation test); and the crossovers
said in words where the data show them.

A cell's verdict compares the leader with the best of the rest (the runner-up by median); lanes
the leader does not measurably beat are named as tied with it. Sentences are built only from
cells that were decided: a lane "leads" at a cell only where the test says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanebench.analysis.noise import Verdict, judge_stats
from lanebench.records.envelope import CellKey, CellSummary
from lanebench.records.samples import Stat

# the figures a winner is named for: (key, label, unit, higher is better, the cell's Stat)
WinFigure = tuple[str, str, str, bool, Callable[[CellSummary], Stat | None]]
FIGURES: tuple[WinFigure, ...] = (
    ("decode", "decode per stream", "tok/s", True, lambda c: c.decode),
    ("aggregate", "aggregate decode, steady state", "tok/s", True, lambda c: c.aggregate),
    ("ttft", "time to first token", "s", False, lambda c: c.ttft),
)


@dataclass(slots=True)
class CellWinner:
    """The verdict of one cell at one figure."""

    cell: CellKey
    figure: str
    leader: str | None = None  # the lane with the best median
    runner_up: str | None = None
    verdict: Verdict | None = None  # runner-up (B) against the leader (A)
    tied: list[str] = field(default_factory=list)  # lanes not measurably behind the leader

    @property
    def decided(self) -> bool:
        return self.leader is not None and self.runner_up is not None and not self.tied

    @property
    def margin(self) -> float | None:
        """How many times better the leader is than the runner-up (>= 1; for times, runner-up's
        over the leader's)."""
        v = self.verdict
        if v is None or not v.ratio:
            return None
        return 1 / v.ratio if v.ratio < 1 else v.ratio

    @property
    def margin_range(self) -> tuple[float, float] | None:
        v = self.verdict
        if v is None or not v.ratio or not v.ratio_low or not v.ratio_high:
            return None
        lo, hi = sorted((v.ratio_low, v.ratio_high))
        return (1 / hi, 1 / lo) if v.ratio < 1 else (lo, hi)

    def text(self) -> str:
        if self.leader is None:
            return "no lane measured"
        if self.runner_up is None:
            return f"{self.leader} (the only lane measured)"
        if not self.decided:
            names = ", ".join([self.leader, *self.tied])
            test = self.verdict.test if self.verdict else ""
            return f"no measurable difference ({names}; {test})"
        r = self.margin_range
        span = f" ({r[0]:.2f}–{r[1]:.2f}×)" if r else ""
        return f"{self.leader} by {self.margin:.2f}×{span} over {self.runner_up}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "depth": self.cell[0],
            "concurrency": self.cell[1],
            "figure": self.figure,
            "leader": self.leader,
            "runner_up": self.runner_up,
            "tied": list(self.tied),
            "decided": self.decided,
            "margin": self.margin,
            "margin_range": list(self.margin_range) if self.margin_range else None,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "text": self.text(),
        }


def _figure(key: str) -> WinFigure:
    for f in FIGURES:
        if f[0] == key:
            return f
    raise KeyError(f"no winner figure {key!r} (known: {', '.join(f[0] for f in FIGURES)})")


def cell_winner(cell: CellKey, figure: str, stats: Mapping[str, Stat | None]) -> CellWinner:
    """The verdict at one cell: the leader by median, judged against every other lane."""
    _, _, _, higher, _ = _figure(figure)
    present = [(name, s) for name, s in stats.items() if s is not None and s.n > 0]
    out = CellWinner(cell, figure)
    if not present:
        return out
    sign = 1 if higher else -1
    ranked = sorted(present, key=lambda ns: -sign * ns[1].median)  # stable: first of equals leads
    (leader, best), rest = ranked[0], ranked[1:]
    out.leader = leader
    if not rest:
        return out
    out.runner_up = rest[0][0]
    out.verdict = judge_stats(best, rest[0][1], higher)
    out.tied = [name for name, s in rest if not judge_stats(best, s, higher).measurable]
    return out


def winner_map(lanes: Mapping[str, Sequence[CellSummary]], figure: str) -> list[CellWinner]:
    """Every cell any lane measured, in depth then concurrency order, with its verdict."""
    _, _, _, _, get = _figure(figure)
    by_lane = {name: {c.key: c for c in cells} for name, cells in lanes.items()}
    keys = sorted({k for cells in by_lane.values() for k in cells})
    return [cell_winner(k, figure, {n: (get(cs[k]) if k in cs else None) for n, cs in by_lane.items()})
            for k in keys]  # fmt: skip


def _fmt_depth(d: int) -> str:
    return f"{d / 1024:g}k" if d >= 1024 and d % 256 == 0 else str(d)


def _run_sentence(axis: str, fixed: str, points: list[tuple[int, CellWinner]]) -> str | None:
    """One sentence along an axis at a fixed value of the other: who leads where, by how much."""
    decided = [(x, w) for x, w in points if w.decided]
    if not decided:
        return None

    def label(x: int) -> str:
        return f"depth {_fmt_depth(x)}" if axis == "depth" else f"{x} stream{'s' if x > 1 else ''}"

    leaders = [w.leader for _, w in decided]
    undecided = [x for x, w in points if not w.decided and w.runner_up is not None]
    tail = f"; no measurable difference at {', '.join(label(x) for x in undecided)}" if undecided else ""
    if len(set(leaders)) == 1:
        margins = ", ".join(f"{w.margin:.2f}× at {label(x)}" for x, w in decided)
        return f"{fixed}: {leaders[0]} leads {decided[0][1].runner_up}: {margins}{tail}"
    parts = []
    for x, w in decided:
        parts.append(f"{w.leader} by {w.margin:.2f}× at {label(x)}")
    return f"{fixed}: the lead changes: {'; '.join(parts)}{tail}"


def crossovers(winners: Sequence[CellWinner]) -> list[str]:
    """Sentences along depth (at each concurrency) and along concurrency (at each depth), from
    decided cells only; a cell inside the noise is named as such, never given a winner."""
    if not winners:
        return []
    figure = winners[0].figure
    _, label, _, _, _ = _figure(figure)
    by_c: dict[int, list[tuple[int, CellWinner]]] = {}
    by_d: dict[int, list[tuple[int, CellWinner]]] = {}
    for w in winners:
        d, c = w.cell
        by_c.setdefault(c, []).append((d, w))
        by_d.setdefault(d, []).append((c, w))
    out = []
    if len({d for d, _ in (w.cell for w in winners)}) > 1:
        for c, pts in sorted(by_c.items()):
            s = _run_sentence("depth", f"{label}, {c} stream{'s' if c > 1 else ''}", sorted(pts))
            if s:
                out.append(s)
    if len(by_c) > 1:
        for d, pts in sorted(by_d.items()):
            s = _run_sentence("concurrency", f"{label}, depth {_fmt_depth(d)}", sorted(pts))
            if s:
                out.append(s)
    return out
