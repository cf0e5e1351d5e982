"""The cells an interrupted envelope lane finished.

An envelope lane measures its cells one after another (depth by depth, streams within a depth),
each sample committed as it comes. When a run is interrupted inside a lane, every cell before the
one it was measuring is complete: the lane had moved on. These are the cells a resume keeps
(``orchestration.resume_step``) and the cells a report shows of a lane that never finished.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lanebench.config.job import JobSpec
from lanebench.records.envelope import CellKey
from lanebench.records.lane import LaneResult
from lanebench.records.samples import AggregateRecord, RequestRecord


@dataclass(slots=True)
class KeptCells:
    """The complete cells of an interrupted envelope lane and the records that measured them."""

    cells: set[CellKey]
    of: int  # cells in the job
    samples: list[RequestRecord] = field(default_factory=list)
    aggregates: list[AggregateRecord] = field(default_factory=list)

    @property
    def records(self) -> list[RequestRecord | AggregateRecord]:
        return [*self.samples, *self.aggregates]

    def flag(self) -> str:
        return (
            f"resumed: {len(self.cells)} of {self.of} cells kept from the interrupted run (measured "
            "by an earlier server of this lane), the rest measured after a restart"
        )


def cell_order(job: JobSpec) -> list[CellKey]:
    """The order an envelope lane measures its cells in (``measure.envelope.EnvelopeJob``)."""
    return [(d, c) for d in job.depth_levels for c in job.concurrency_levels]


def kept_cells(
    samples: Iterable[RequestRecord], aggregates: Iterable[AggregateRecord], job: JobSpec
) -> KeptCells | None:
    """The cells an interrupted lane finished (every cell before the last one it has a sample
    of, or before the depth it had begun to fill), with their records; None when it finished
    none."""
    order = cell_order(job)
    samples, aggregates = list(samples), list(aggregates)
    measured = {(r.depth, r.concurrency) for r in samples if r.kind == "cell"} & set(order)
    if not measured:
        return None
    # how far the lane got: its last cell with a sample, or a later depth it had begun to fill
    # (a fill comes before the first cell of its depth, so the cell before it was complete)
    first_of = {d: order.index((d, job.concurrency_levels[0])) for d in job.depth_levels}
    fills = [first_of[r.depth] for r in samples if r.kind == "fill" and r.depth in first_of]
    frontier = max([order.index(k) for k in measured] + fills)
    done = {k for k in measured if order.index(k) < frontier}
    if not done:
        return None
    whole = {d for d in job.depth_levels if all((d, c) in done for c in job.concurrency_levels)}
    kept = KeptCells(done, len(order))
    kept.samples = [
        r for r in samples
        if (r.kind == "cell" and (r.depth, r.concurrency) in done) or (r.kind == "fill" and r.depth in whole)
    ]  # fmt: skip
    kept.aggregates = [a for a in aggregates if a.depth is not None and (a.depth, a.streams) in done]
    return kept


def kept_by_lane(lanes: Iterable[LaneResult], finished: set[str], job: JobSpec) -> dict[str, KeptCells]:
    """Per lane not in ``finished`` that finished a cell, its finished cells; empty for a job
    without an envelope (what a resume keeps and what a report shows of a lane that stopped)."""
    if not job.envelope:
        return {}
    out = {}
    for lane in lanes:
        if lane.name not in finished and (kept := kept_cells(lane.samples, lane.aggregates, job)) is not None:
            out[lane.name] = kept
    return out
