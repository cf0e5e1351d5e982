"""``tune``: the best lane of a grid with fewer measurements than the full grid.

Successive halving: every candidate runs a short job; the better share (``keep``) goes on to a
job twice as long; when two or fewer remain, the finalists run the full job. The finalist with the
best median wins only if it is measurably better than the others by ``lanebench.analysis.noise``'s rule
(min–max ranges apart, with enough repetitions); finalists within the noise are ``tied``, the log,
the JSON and the last line say "no measurable difference" and by which test, and the tie-break
(``TIE_BREAK``) picks one. Each round's figures and the reason for stopping are kept in the log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lanebench.analysis.noise import Standing, no_difference_text, standing
from lanebench.busy.verdict import busy_mark
from lanebench.config.job import JobSpec
from lanebench.config.lanes import EMULATED_MARK, LaneSpec
from lanebench.config.run import RunConfig
from lanebench.errors import BadInput
from lanebench.orchestration.plan import requests_per_lane
from lanebench.quality.greedy import verdict
from lanebench.records.figures import FIGURES, Fig
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.records.samples import Stat

# goal → the figure it maximises (or minimises, when lower is better)
GOALS: dict[str, Fig] = {
    "decode": Fig.DECODE,
    "normalized-wall": Fig.NORMALIZED_WALL,
    "aggregate": Fig.AGGREGATE,
}

# how tune picks among finalists that are not measurably different
TIE_BREAK = "the better median, not a measured difference"

Measure = Callable[[Sequence[LaneSpec], RunConfig], list[LaneResult]]
Score = Callable[[Sequence[LaneSpec], RunConfig], dict[str, QualityRecord]]  # quality per lane name


def within_kld(
    lanes: Sequence[LaneSpec], records: dict[str, QualityRecord], max_kld: float
) -> tuple[list[LaneSpec], list[str]]:
    """The lanes whose mean KLD against the reference is at most ``max_kld`` (nats/token), and a
    log line for each lane left out: over budget, or of unknown quality (no KLD measured).

    A speculative lane has no KLD of its own: it is within the budget only when its greedy
    check found it lossless against a plain partner that is within the budget; unchecked or not
    lossless, its quality is unknown or worse, and it is left out."""
    kept: list[LaneSpec] = []
    log: list[str] = []
    for lane in lanes:
        q = records.get(lane.name)
        if q is not None and q.speculative:
            why = _speculative_budget(q, records, max_kld)
            if why:
                log.append(f"  dropped  {lane.name}: {why}")
            else:
                kept.append(lane)
        elif q is None or q.kld_mean is None:
            why = (q.note or str(q.status)) if q else "no quality measured"
            log.append(f"  dropped  {lane.name}: unknown quality, no KLD measured ({why})")
        elif q.kld_mean > max_kld:
            err = f" ± {q.kld_err:.4f}" if q.kld_err is not None else ""
            log.append(f"  dropped  {lane.name}: mean KLD {q.kld_mean:.4f}{err} > --max-kld {max_kld:g}")
        else:
            kept.append(lane)
    return kept, log


def _speculative_budget(q: QualityRecord, records: dict[str, QualityRecord], max_kld: float) -> str:
    """Why a speculative lane is not within ``max_kld`` (empty: it is, through its partner)."""
    if q.status != QualityStatus.LOSSLESS:
        return f"unknown quality, no KLD of its own ({verdict(q)})"
    partner = records.get(q.partner or "")
    if partner is None or partner.speculative or partner.kld_mean is None:
        return f"unknown quality: lossless against {q.partner!r}, whose KLD was not measured"
    if partner.kld_mean > max_kld:
        kld = f"{partner.kld_mean:.4f}"
        return f"lossless against {q.partner!r}, whose mean KLD {kld} > --max-kld {max_kld:g}"
    return ""


@dataclass(slots=True)
class TuneReport:
    """The search and its outcome. ``best``: the lane chosen (its name carries its grid values);
    ``best_values``: those values (the lane's ``sweep`` point); ``tied``: finalists not measurably
    different from it; ``decided_by``: ``measured`` (better beyond the noise), ``tie-break``
    (``TIE_BREAK`` picked among tied finalists) or ``only finalist``; ``decision``: the sentence."""

    goal: str
    best: str | None = None
    best_values: dict[str, Any] = field(default_factory=dict)
    best_emulated: bool = False  # acceptance emulated: its speed is at a chosen acceptance
    tied: list[str] = field(default_factory=list)
    decided_by: str | None = None
    decision: str = ""
    tie_break: str = TIE_BREAK
    standing: dict[str, Any] | None = None  # noise.Standing.to_dict() of the confirm round
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)  # lane -> QualityRecord.to_dict()
    rounds: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0  # prompt + generated tokens sent, the cost that matters
    full_grid_tokens: int = 0
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def best_line(self) -> str:
        """The CLI's last line: the lane with its grid values, marked if emulated, and how it won."""
        if self.best is None:
            return "best lane: none (no finalist gave a figure)"
        name = self.best + (f" {EMULATED_MARK}" if self.best_emulated else "")
        if self.decided_by == "tie-break":
            return f"best lane: {name} (tie-break: {TIE_BREAK}); {self.decision}"
        return f"best lane: {name}; {self.decision}" if self.decision else f"best lane: {name}"


# goal → the envelope cell's figure it reads (``CellSummary`` field) when the job maps the envelope
CELL_GOALS = {"decode": "decode", "aggregate": "aggregate"}


def operating_point(job: JobSpec) -> tuple[int, int] | None:
    """The cell tune judges at when the job maps the envelope: the deepest depth and the widest
    concurrency asked for (your context and your load); None for the standard job."""
    if not job.envelope:
        return None
    return max(job.depth_levels), max(job.concurrency_levels)


def goal_stat(result: LaneResult, goal: str) -> Stat | None:
    """The goal's figure of a lane: its summary's, or with an envelope, the operating point's
    cell (per-stream decode, or the steady-state aggregate) — the last cell measured there."""
    if not result.envelope:
        return result.summary.get(GOALS[goal])
    depth = max(c.depth for c in result.envelope)
    conc = max(c.concurrency for c in result.envelope if c.depth == depth)
    cell = next(c for c in result.envelope if (c.depth, c.concurrency) == (depth, conc))
    stat = getattr(cell, CELL_GOALS[goal]) if goal in CELL_GOALS else None
    return stat if isinstance(stat, Stat) else None


def score(result: LaneResult, goal: str) -> float | None:
    """The goal's median for a lane; None if it failed or has no such figure."""
    stat = goal_stat(result, goal)
    if result.status == LaneStatus.FAILED or stat is None:
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
    """The short job of round one: an eighth of the output, a shorter prompt, one warm-up, one
    rep, no --target-ci (a screen ranks by median; only the confirm round repeats to a CI)."""
    return replace(
        final, n_in=min(final.n_in, 256), n_out=max(16, final.n_out // 8), reps=1, warmup=1, target_ci=None
    )


def _grow(job: JobSpec, final: JobSpec) -> JobSpec:
    return replace(job, n_in=min(final.n_in, job.n_in * 2), n_out=min(final.n_out, job.n_out * 2))


def tune_config(config: RunConfig, goal: str) -> RunConfig:
    """The config tune confirms finalists with: the job asked for, with the N-slot aggregate only
    for ``--goal aggregate`` unless ``--aggregate`` is given."""
    _check_goal(goal)
    if config.job.envelope and goal not in CELL_GOALS:
        raise BadInput(
            f"--goal: {goal!r} is not a figure of the envelope's cells; with --depth/--concurrency "
            f"expected one of {', '.join(CELL_GOALS)}"
        )
    if "aggregate" not in config.model_fields_set:
        return config.with_job(replace(config.job, aggregate=config.aggregate if goal == "aggregate" else 0))
    if goal == "aggregate" and config.aggregate == 0 and not config.job.envelope:
        raise BadInput("--aggregate: --goal aggregate needs at least 1 concurrent job, got 0")
    return config


def _check_goal(goal: str) -> None:
    if goal not in GOALS:
        raise BadInput(f"--goal: expected one of {', '.join(GOALS)}, got {goal!r}")


def _check(goal: str, keep: float, min_margin: float, max_kld: float | None, quality: Score | None) -> None:
    _check_goal(goal)
    if not 0 < keep < 1:
        raise BadInput(f"--keep: expected a share between 0 and 1, got {keep}")
    if not 0 <= min_margin < 1:
        raise BadInput(f"--min-margin: expected a share from 0 up to 1 (e.g. 0.05), got {min_margin}")
    if max_kld is not None and (max_kld < 0 or quality is None):
        raise BadInput(f"--max-kld: expected a mean KLD >= 0 (nats/token), got {max_kld}")


def tune_lanes(
    lanes: Sequence[LaneSpec],
    goal: str,
    config: RunConfig,
    measure: Measure,
    keep: float = 0.5,
    max_kld: float | None = None,
    quality: Score | None = None,
    min_margin: float = 0.0,
) -> TuneReport:
    """Successive halving over ``lanes``; ``measure`` runs lanes with a config and returns results.
    The finalists are confirmed on ``config.job``; earlier rounds run shorter jobs (``first_job``).
    With ``max_kld`` or ``config.quality``, ``quality`` scores every lane once, first (the rounds
    never score it), and with ``max_kld`` only lanes within it compete. ``min_margin`` (a share):
    a finalist that leads by less is tied whatever the spreads say."""
    _check(goal, keep, min_margin, max_kld, quality)
    final = config.job
    report = TuneReport(goal=goal, full_grid_tokens=len(lanes) * cost(final))
    if (point := operating_point(final)) is not None:
        report.log.append(
            f"judged at the envelope's operating point: depth {point[0]:,}, {point[1]} stream(s) "
            f"({'per-stream decode' if goal == 'decode' else 'steady-state aggregate decode'})"
        )
    candidates = _within_quality(list(lanes), config, report, max_kld, quality)
    rounds = config.model_copy(update={"quality": False})
    job = first_job(final)
    n_round = 0
    while len(candidates) > 2:
        n_round += 1
        ranked = rank(measure(candidates, rounds.with_job(job)), goal)
        report.tokens += len(candidates) * cost(job)
        n_keep = max(2, math.ceil(len(candidates) * keep))
        _log_round(report, n_round, job, ranked, n_keep)
        names = {r.name for r, s in ranked[:n_keep] if s is not None}
        candidates = [lane for lane in candidates if lane.name in names]
        job = _grow(job, final)
    if not candidates:
        report.log.append("stopped: every candidate failed; nothing to confirm")
        return report
    ranked = rank(measure(candidates, rounds.with_job(final)), goal)
    report.tokens += len(candidates) * cost(final)
    final_standing = _standing(ranked, goal, min_margin)
    _log_round(report, n_round + 1, final, ranked, 1, final_standing)
    _decide(report, ranked, final_standing)
    report.log.append(
        f"stopped: {len(candidates)} finalist(s) confirmed on the full job; "
        f"{report.tokens:,} tokens sent instead of {report.full_grid_tokens:,} for the full grid"
    )
    return report


def _within_quality(
    lanes: list[LaneSpec], config: RunConfig, report: TuneReport, max_kld: float | None, quality: Score | None
) -> list[LaneSpec]:
    """The lanes that compete: all, or with ``max_kld`` those within it; quality is scored (and
    logged) first when ``max_kld`` or ``config.quality`` asks for it."""
    if quality is None or (max_kld is None and not config.quality):
        return lanes
    records = quality(lanes, config)
    report.quality = {name: q.to_dict() for name, q in records.items()}
    if max_kld is None:
        report.log.append(f"quality: {len(records)} of {len(lanes)} lane(s) scored")
        report.log += [f"  quality  {lane.name}: {_quality_text(records.get(lane.name))}" for lane in lanes]
        return lanes
    kept, dropped = within_kld(lanes, records, max_kld)
    report.log.append(f"quality: {len(kept)} of {len(lanes)} lane(s) within --max-kld {max_kld:g}")
    report.log += dropped
    return kept


def _quality_text(q: QualityRecord | None) -> str:
    if q is None:
        return "no quality measured"
    if q.speculative:
        return verdict(q)
    if q.kld_mean is None:
        return f"no KLD measured ({q.note or q.status})"
    err = f" ± {q.kld_err:.4f}" if q.kld_err is not None else ""
    return f"mean KLD {q.kld_mean:.4f}{err} nats/token" + (
        " (the reference)" if q.status == QualityStatus.REFERENCE else ""
    )


def _standing(ranked: list[tuple[LaneResult, float | None]], goal: str, min_margin: float) -> Standing:
    """The finalists judged against the leader at the goal's figure (best first, as ranked)."""
    key = GOALS[goal]
    stats = {r.name: goal_stat(r, goal) for r, s in ranked if s is not None}
    return standing(stats, FIGURES[key].higher_is_better, min_margin=min_margin)


def _decide(report: TuneReport, ranked: list[tuple[LaneResult, float | None]], st: Standing) -> None:
    """Fill best, tied, decided_by and decision from the confirm round's standing."""
    report.standing = st.to_dict()
    by_name = {r.name: r for r, _ in ranked}
    if st.leader is None:
        report.decision = "no finalist gave a figure"
        return
    best = by_name[st.leader]
    report.best, report.best_values = best.name, dict(best.lane.sweep)
    report.best_emulated, report.tied = best.lane.emulated, list(st.tied)
    shown = {name: r.lane.marked_name for name, r in by_name.items()}
    if not st.verdicts:
        report.decided_by, report.decision = "only finalist", "the only finalist with a figure"
    elif st.tied:
        report.decided_by = "tie-break"
        report.decision = "; ".join(
            no_difference_text(shown[best.name], shown[t], st.verdicts[t]) for t in st.tied
        )
    else:
        report.decided_by = "measured"
        report.decision = "; ".join(
            f"better than {shown[o]} ({shown[o]} / {shown[best.name]} = {v.ratio_text()}; {v.test})"
            for o, v in st.verdicts.items()
        )
    report.log.append(f"decision: {report.decision}")
    if report.decided_by == "tie-break":
        report.log.append(f"tie-break ({TIE_BREAK}): {shown[best.name]}")


def _figure(r: LaneResult, key: Fig, goal: str) -> str:
    s = goal_stat(r, goal)
    if r.status == LaneStatus.FAILED or s is None:
        return f"no figure ({r.error or r.status})"
    spread = f" ({s.min:.2f}–{s.max:.2f}, {s.n} reps)" if s.n > 1 else " (1 rep)"
    busy = busy_mark(r.busy.figures if r.busy else None, str(key))  # a busy machine's figure
    return f"{s.median:.2f}{spread}{busy}"


def _log_round(
    report: TuneReport,
    n: int,
    job: JobSpec,
    ranked: list[tuple[LaneResult, float | None]],
    n_keep: int,
    final: Standing | None = None,
) -> None:
    key = GOALS[report.goal]
    rows = [
        {
            "lane": r.name,
            str(key): s,
            "status": r.status,
            "emulated": r.lane.emulated,
            "busy": r.busy.figures.get(str(key)) if r.busy else None,
        }
        for r, s in ranked
    ]
    report.rounds.append({"round": n, "n_in": job.n_in, "n_out": job.n_out, "reps": job.reps, "ranked": rows})
    kind = "confirm" if final is not None else f"round {n}"
    screen = "" if final is not None else " (a screen: kept by median, not judged for noise)"
    report.log.append(
        f"{kind}: {len(ranked)} candidate(s), job {job.n_in} in / {job.n_out} out x{job.reps}{screen}"
    )
    for i, (r, s) in enumerate(ranked):
        mark = "kept" if i < n_keep and s is not None else "dropped"
        # confirm round: every lane in a tie is "tied", the leader too; the tie-break line names it
        if final is not None:
            tie = r.name in final.tied or (r.name == final.leader and bool(final.tied))
            mark = "tied" if tie else "best" if r.name == final.leader else "finalist"
        report.log.append(f"  {mark:8} {r.lane.marked_name}: {key} = {_figure(r, key, report.goal)}")
