"""Everything a report needs, read from the store once: runs, lanes, fingerprints, history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lanebench.analysis.envelope import summarize_cells
from lanebench.analysis.finished_cells import kept_by_lane
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo, StoredLane


@dataclass(slots=True)
class RunData:
    """One stored run with its lanes (samples included) and fingerprints."""

    run: RunInfo
    lanes: list[LaneResult]
    fingerprints: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fingerprint(self, kind: str, key: str | None = None) -> dict[str, Any] | None:
        for f in self.fingerprints:
            if f["kind"] == kind and (key is None or f["key"] == key):
                return dict(f["data"])
        return None

    def models(self) -> dict[str, dict[str, Any]]:
        """Model fingerprints by path."""
        return {f["key"]: dict(f["data"]) for f in self.fingerprints if f["kind"] == "model"}


@dataclass(slots=True)
class ReportData:
    """The runs asked for, newest last, and finished lanes of other runs for context."""

    runs: list[RunData]
    history: list[StoredLane] = field(default_factory=list)  # finished lanes of every stored run
    bandwidth: dict[str, Any] | None = None  # for the Decode Roofline table (report --bandwidth)

    @property
    def run_ids(self) -> list[str]:
        return [r.run.run_id for r in self.runs]


def load_report(store: Any, run_ids: Sequence[str]) -> ReportData:
    """Read ``run_ids`` (the latest run when empty) and their context from ``store``."""
    ids = list(dict.fromkeys(run_ids)) or [store.latest_run_id()]
    runs = [
        RunData(
            run=store.get_run(rid),
            lanes=store.load_lanes(rid),
            fingerprints=store.fingerprints(rid),
            extras=store.lane_extras(rid),
        )
        for rid in ids
    ]
    for rd in runs:
        finished_cells(rd, store.finished_lane_names(rd.run.run_id))
    runs.sort(key=lambda r: (r.run.started_at, r.run.run_id))
    return ReportData(runs=runs, history=store.finished_lanes())


def finished_cells(rd: RunData, finished: set[str]) -> None:
    """An envelope lane that never finished (interrupted) shows the cells it did finish
    (``analysis.finished_cells``), summarised from its stored samples, flagged so; the cell it was
    inside is left out."""
    kept_of = kept_by_lane(rd.lanes, finished, rd.run.job)
    for lane in rd.lanes:
        kept = kept_of.get(lane.name)
        if kept is None or lane.envelope:
            continue
        lane.envelope = summarize_cells(kept.samples, kept.aggregates)
        lane.flags.append(
            f"never finished: the {len(kept.cells)} of {kept.of} envelope cells it finished before it "
            "stopped are shown, from its stored samples (the server log is not read here: no KV in use)"
        )
