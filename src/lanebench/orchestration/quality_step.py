"""Quality as a step of a run: refuse pairings that mean nothing while planning; after the
lanes are measured, score the ones that ask for it against the reference lane, record it on
each result and hand the results to the sinks again.

A speculative lane whose greedy output differs from its plain partner's is flagged. A quality
measurement that fails never fails the run: its lanes carry a ``failed`` quality record saying
why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import Unavailable
from lanebench.errors import LanebenchError
from lanebench.orchestration.plan import plan_lanes
from lanebench.quality.assess import Assessor, QualityOptions, QualityOutcome
from lanebench.quality.greedy import verdict
from lanebench.quality.reproduce import plan_scoring
from lanebench.quality.select import QualityLane, pick_reference
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.records.run import RunInfo
from lanebench.store.sinks import Sink

Say = Callable[[str], None]


def quality_lanes(plans: Sequence[LanePlan]) -> list[QualityLane]:
    """What quality needs of each plan, as its engine's ``quality_tool`` says: the build and
    model llama-perplexity scores it with, or why it cannot."""
    out = []
    for p in plans:
        tool = p.engine.quality_tool(p)
        if isinstance(tool, Unavailable):
            out.append(QualityLane(p.lane, unavailable=tool.why))
        else:
            out.append(QualityLane(p.lane, tool.server_bin, tool.model))
    return out


def wants_quality(lanes: Sequence[LaneSpec], opts: RunConfig) -> bool:
    return opts.quality or any(lane.quality for lane in lanes)


def quality_options(opts: RunConfig) -> QualityOptions:
    return QualityOptions(
        work_dir=opts.quality_dir or opts.out_dir / "quality",
        tokens=opts.quality_tokens,
        reference=opts.reference,
    )


def check_quality(plans: Sequence[LanePlan], opts: RunConfig) -> None:
    """Before anything starts: refuse a bad ``--reference`` (or two lanes marked reference) and
    every pairing with the reference whose KLD would mean nothing (``reproduce.plan_scoring``)."""
    lanes = quality_lanes(plans)
    wanted = [q.name for q in lanes if opts.quality or q.spec.quality]
    plan_scoring(lanes, wanted, opts.reference)


def _wanted(results: Sequence[LaneResult], plans: Sequence[LanePlan], opts: RunConfig) -> list[str]:
    names = [r.name for r in results if r.status != LaneStatus.FAILED and (opts.quality or r.lane.quality)]
    lanes = {q.name: q for q in quality_lanes(plans)}
    if any(n in lanes and not lanes[n].drafting for n in names):
        # the reference's own row, so the table shows what the others are compared with
        ref = pick_reference(list(lanes.values()), opts.reference)
        if ref is not None and ref.name not in names and any(r.name == ref.name for r in results):
            names.insert(0, ref.name)
    return names


def apply_quality(
    results: Sequence[LaneResult],
    plans: Sequence[LanePlan],
    opts: RunConfig,
    run: RunInfo,
    sinks: Sequence[Sink],
    say: Say | None = None,
) -> QualityOutcome | None:
    """Score the lanes that ask for it; each gets ``result.quality`` and goes to the sinks again."""
    wanted = _wanted(results, plans, opts)
    if not wanted:
        return None
    assessor = Assessor(quality_lanes(plans), quality_options(opts), say)
    try:
        outcome = assessor.run(wanted, {r.name: r.samples for r in results})
    except LanebenchError as exc:  # planning refused what it could; a tool or --help that fails now
        outcome = QualityOutcome({n: QualityRecord(QualityStatus.FAILED, note=str(exc)) for n in wanted})
    for r in results:
        rec = outcome.records.get(r.name)
        if rec is None:
            continue
        r.quality = rec
        if rec.status == QualityStatus.NOT_LOSSLESS:
            r.status = LaneStatus.FLAGGED
            r.flags.append(verdict(rec))
        for s in sinks:
            s.lane_finished(run, r)
    return outcome


def quality_only(lanes: Sequence[LaneSpec], opts: RunConfig, say: Say | None = None) -> QualityOutcome:
    """Quality of every lane without measuring speed (``lanebench quality``, ``tune --max-kld``):
    speculative lanes stay unchecked (no requests to compare). Pairings that mean nothing are
    refused (``BadInput``) before any tool runs."""
    plans = plan_lanes(lanes, opts)
    return Assessor(quality_lanes(plans), quality_options(opts), say).run([p.lane.name for p in plans])
