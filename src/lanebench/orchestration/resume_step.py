"""Resuming an interrupted envelope lane at its cells, not from scratch.

An envelope lane measures its cells one after another (depth by depth, streams within a depth),
each sample committed as it comes. When a run is interrupted inside a lane, every cell before the
one it was measuring is complete: the lane had moved on. ``--resume`` keeps those cells' records
(their batches, and the fills of depths whose every cell is kept), writes them into the lane
again, and measures only the cells that are left; the lane is flagged with how many cells an
earlier server of it measured. The cell it was inside, and anything after, is measured anew.
A lane of the standard job (no envelope) is measured again whole, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lanebench.config.job import JobSpec
from lanebench.records.envelope import CellKey
from lanebench.records.lane import LaneResult
from lanebench.records.samples import AggregateRecord, RequestRecord


class LaneSource(Protocol):
    def finished_lane_names(self, run_id: str) -> set[str]: ...
    def load_lanes(self, run_id: str) -> list[LaneResult]: ...


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
    of), with their records; None when it finished none."""
    order = cell_order(job)
    samples, aggregates = list(samples), list(aggregates)
    measured = {(r.depth, r.concurrency) for r in samples if r.kind == "cell"} & set(order)
    if not measured:
        return None
    last = max(order.index(k) for k in measured)
    done = set(order[:last]) & measured
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


def kept_lanes(store: LaneSource, run_id: str, job: JobSpec, names: Sequence[str]) -> dict[str, KeptCells]:
    """Per lane of ``names`` that ``run_id`` holds unfinished, the cells a resume keeps; read
    before the store discards unfinished lanes. Empty for a job without an envelope."""
    if not job.envelope:
        return {}
    finished = store.finished_lane_names(run_id)
    out = {}
    for lane in store.load_lanes(run_id):
        if lane.name not in names or lane.name in finished:
            continue
        if (kept := kept_cells(lane.samples, lane.aggregates, job)) is not None:
            out[lane.name] = kept
    return out
