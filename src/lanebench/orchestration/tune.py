"""``tune``: the best lane of a grid with fewer measurements than the full grid.

Successive halving: every candidate runs a short job; the better share (``keep``) goes on to a
job twice as long; when two or fewer remain, the finalists run the full job and the best wins.
Each round's figures and the reason for stopping are kept in the report's log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lanebench.busy.verdict import busy_mark
from lanebench.errors import BadInput
from lanebench.figures import FIGURES, Fig
from lanebench.lanes import LaneSpec
from lanebench.orchestration.plan import RunOptions, requests_per_lane
from lanebench.records import JobSpec, LaneResult, QualityRecord

# goal → the figure it maximises (or minimises, when lower is better)
GOALS: dict[str, Fig] = {
    "decode": Fig.DECODE,
    "normalized-wall": Fig.NORMALIZED_WALL,
    "aggregate": Fig.AGGREGATE,
}

Measure = Callable[[Sequence[LaneSpec], RunOptions], list[LaneResult]]
Score = Callable[[Sequence[LaneSpec], RunOptions], dict[str, QualityRecord]]  # quality per lane name


def within_kld(
    lanes: Sequence[LaneSpec], records: dict[str, QualityRecord], max_kld: float
) -> tuple[list[LaneSpec], list[str]]:
    """The lanes whose mean KLD against the reference is at most ``max_kld`` (nats/token), and a
    log line for each lane left out (over budget, or without a figure to judge)."""
    kept: list[LaneSpec] = []
    log: list[str] = []
    for lane in lanes:
        q = records.get(lane.name)
        if q is None or q.kld_mean is None:
            why = (q.note or str(q.status)) if q else "no quality measured"
            log.append(f"  dropped  {lane.name}: no KLD to judge ({why})")
        elif q.kld_mean > max_kld:
            err = f" ± {q.kld_err:.4f}" if q.kld_err is not None else ""
            log.append(f"  dropped  {lane.name}: mean KLD {q.kld_mean:.4f}{err} > --max-kld {max_kld:g}")
        else:
            kept.append(lane)
    return kept, log


@dataclass(slots=True)
class TuneReport:
    goal: str
    best: str | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0  # prompt + generated tokens sent, the cost that matters
    full_grid_tokens: int = 0
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(result: LaneResult, goal: str) -> float | None:
    """The goal's median for a lane; None if it failed or has no such figure."""
    stat = result.summary.get(GOALS[goal])
    if result.status == "failed" or stat is None:
        return None
    return stat.median


def rank(results: Sequence[LaneResult], goal: str) -> list[tuple[LaneResult, float | None]]:
    """Best first; lanes without a score last."""
    larger = FIGURES[GOALS[goal]].higher_is_better
    scored = [(r, score(r, goal)) for r in results]
    return sorted(scored, key=lambda rs: (rs[1] is None, -(rs[1] or 0) if larger else (rs[1] or 0)))


def cost(job: JobSpec) -> int:
    """Tokens one lane's job sends through the engine (prompt + generated, every request)."""
    return requests_per_lane(job) * (job.n_in + job.n_out)


def first_job(final: JobSpec) -> JobSpec:
    """The short job of round one: an eighth of the output, a shorter prompt, one rep."""
    return replace(final, n_in=min(final.n_in, 256), n_out=max(16, final.n_out // 8), reps=1, warmup=1)


def _grow(job: JobSpec, final: JobSpec) -> JobSpec:
    return replace(job, n_in=min(final.n_in, job.n_in * 2), n_out=min(final.n_out, job.n_out * 2))


def tune_lanes(
    lanes: Sequence[LaneSpec],
    goal: str,
    final: JobSpec,
    opts: RunOptions,
    measure: Measure,
    keep: float = 0.5,
    max_kld: float | None = None,
    quality: Score | None = None,
) -> TuneReport:
    """Successive halving over ``lanes``; ``measure`` runs lanes with a job and returns results.
    With ``max_kld``, ``quality`` scores every lane first and only lanes within it compete."""
    if goal not in GOALS:
        raise BadInput(f"--goal: expected one of {', '.join(GOALS)}, got {goal!r}")
    if not 0 < keep < 1:
        raise BadInput(f"--keep: expected a share between 0 and 1, got {keep}")
    report = TuneReport(goal=goal, full_grid_tokens=len(lanes) * cost(final))
    candidates = list(lanes)
    if max_kld is not None:
        if max_kld < 0 or quality is None:
            raise BadInput(f"--max-kld: expected a mean KLD >= 0 (nats/token), got {max_kld}")
        candidates, dropped = within_kld(candidates, quality(candidates, opts), max_kld)
        report.log.append(f"quality: {len(candidates)} of {len(lanes)} lane(s) within --max-kld {max_kld:g}")
        report.log += dropped
    job = first_job(final)
    n_round = 0
    while len(candidates) > 2:
        n_round += 1
        ranked = rank(measure(candidates, replace(opts, job=job)), goal)
        report.tokens += len(candidates) * cost(job)
        n_keep = max(2, math.ceil(len(candidates) * keep))
        _log_round(report, n_round, job, ranked, n_keep)
        names = {r.name for r, s in ranked[:n_keep] if s is not None}
        candidates = [lane for lane in candidates if lane.name in names]
        job = _grow(job, final)
    if not candidates:
        report.log.append("stopped: every candidate failed; nothing to confirm")
        return report
    ranked = rank(measure(candidates, replace(opts, job=final)), goal)
    report.tokens += len(candidates) * cost(final)
    _log_round(report, n_round + 1, final, ranked, 1, final_round=True)
    best, best_score = ranked[0]
    report.best = best.name if best_score is not None else None
    report.log.append(
        f"stopped: {len(candidates)} finalist(s) confirmed on the full job; "
        f"{report.tokens:,} tokens sent instead of {report.full_grid_tokens:,} for the full grid"
    )
    return report


def _log_round(
    report: TuneReport,
    n: int,
    job: JobSpec,
    ranked: list[tuple[LaneResult, float | None]],
    n_keep: int,
    final_round: bool = False,
) -> None:
    key = str(GOALS[report.goal])
    rows = [
        {"lane": r.name, key: s, "status": r.status, "busy": r.busy.figures.get(key) if r.busy else None}
        for r, s in ranked
    ]
    report.rounds.append({"round": n, "n_in": job.n_in, "n_out": job.n_out, "reps": job.reps, "ranked": rows})
    kind = "confirm" if final_round else f"round {n}"
    report.log.append(f"{kind}: {len(ranked)} candidate(s), job {job.n_in} in / {job.n_out} out x{job.reps}")
    for i, (r, s) in enumerate(ranked):
        mark = "kept" if i < n_keep and s is not None else "dropped"
        if final_round:
            mark = "best" if i == 0 and s is not None else "finalist"
        figure = f"{s:.2f}" if s is not None else f"no figure ({r.error or r.status})"
        figure += busy_mark(r.busy.figures if r.busy and s is not None else None, key)  # a busy machine's
        report.log.append(f"  {mark:8} {r.name}: {key} = {figure}")
