"""Resuming an interrupted envelope lane at its cells, not from scratch.

``--resume`` keeps the records of the cells the lane finished (``analysis.finished_cells``)
(their batches, and the fills of depths whose every cell is kept), writes them into the lane
again, and measures only the cells that are left; the lane is flagged with how many cells an
earlier server of it measured. The cell it was inside, and anything after, is measured anew.
A lane of the standard job (no envelope) is measured again whole, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lanebench.analysis.finished_cells import KeptCells, kept_by_lane
from lanebench.config.job import JobSpec
from lanebench.records.lane import LaneResult


class LaneSource(Protocol):
    def finished_lane_names(self, run_id: str) -> set[str]: ...
    def load_lanes(self, run_id: str) -> list[LaneResult]: ...


def kept_lanes(store: LaneSource, run_id: str, job: JobSpec, names: Sequence[str]) -> dict[str, KeptCells]:
    """Per lane of ``names`` that ``run_id`` holds unfinished, the cells a resume keeps; read
    before the store discards unfinished lanes. Empty for a job without an envelope."""
    if not job.envelope:
        return {}
    kept = kept_by_lane(store.load_lanes(run_id), store.finished_lane_names(run_id), job)
    return {name: k for name, k in kept.items() if name in names}
