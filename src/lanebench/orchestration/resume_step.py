"""Resuming an interrupted envelope lane at its cells, not from scratch.

``--resume`` keeps the records of the cells the lane finished (``analysis.finished_cells``)
(their batches, and the fills of depths whose every cell is kept), writes them into the lane
again, and measures only the cells that are left; the lane is flagged with how many cells an
earlier server of it measured. The cell it was inside, and anything after, is measured anew.
A lane of the standard job (no envelope) is measured again whole, as before.
A resume continues a run on the machine and build that began it: another host or build (a fresh
cloud machine of another kernel, a rebuilt server) is refused before anything starts, naming the
fact that differs, since its cells and the kept ones would share a lane's tables as one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from lanebench.analysis.finished_cells import KeptCells, kept_by_lane
from lanebench.config.job import JobSpec
from lanebench.engines.base import LanePlan
from lanebench.errors import BadInput
from lanebench.host.hostinfo import host_basics
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo


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


HOST_FACTS = ("hostname", "machine", "cpu", "cpus", "kernel", "os")
BUILD_FACTS = ("build", "commit")


def other_machine(run_id: str, stored: Mapping[str, Any], here: Mapping[str, Any]) -> str | None:
    """Why ``--resume run_id`` may not continue here, or None. ``stored``/``here``: ``host`` (the
    run's ``host_basics``) and ``builds`` (server path -> build info) of the run and of this one;
    memory may differ by 1% (the kernel's count moves between boots), builds only share a path."""
    were, are = stored.get("host") or {}, here.get("host") or {}
    for key in HOST_FACTS:
        if key in were and were.get(key) != are.get(key):
            return f"--resume {run_id}: that run's host {key} was {were[key]!r}, here it is {are.get(key)!r}"
    ram, now = were.get("ram_bytes"), are.get("ram_bytes")
    if ram and now and abs(ram - now) > 0.01 * ram:
        gib = f"{ram / 2**30:.1f} GiB of memory, this one {now / 2**30:.1f} GiB"
        return f"--resume {run_id}: that run's host had {gib}"
    for path, info in (here.get("builds") or {}).items():
        old = (stored.get("builds") or {}).get(path)
        if not isinstance(old, Mapping) or not isinstance(info, Mapping):
            continue
        for key in BUILD_FACTS:
            if old.get(key) != info.get(key):
                return f"--resume {run_id}: {path} was {key} {old.get(key)} in that run, {info.get(key)} now"
    return None


def refuse_other_machine(stored: RunInfo, plans: Sequence[LanePlan]) -> None:
    """Raise ``BadInput`` when the run ``stored`` began ran on another host or build."""
    here = {"host": host_basics(), "builds": {p.build: p.build_info for p in plans}}
    if why := other_machine(stored.run_id, {"host": stored.host, "builds": stored.builds}, here):
        raise BadInput(f"{why}; a resume continues a run where it began: start a new run here")
