"""One invocation of ``lanebench run`` (``RunInfo``): what job, on which host, with which builds;
and a finished lane of a stored run as the report's history reads it (``StoredLane``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.busy import BusyRecord
from lanebench.records.codec import Record
from lanebench.records.lane import LaneStatus, RunStatus
from lanebench.records.samples import Stat


@dataclass(slots=True)
class RunInfo(Record):
    """One invocation of ``lanebench run``: what job, on which host, with which builds."""

    run_id: str
    started_at: str
    lanebench_version: str
    job: JobSpec
    host: dict[str, Any] = field(default_factory=dict)
    builds: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.RUNNING
    finished_at: str | None = None
    lanes_file: str | None = None


@dataclass(slots=True)
class StoredLane(Record):
    """A finished lane of a stored run without its samples, with its run's facts: what the
    report's context table and history plot read from every run in the store."""

    name: str
    lane: LaneSpec
    run_id: str
    started_at: str
    status: LaneStatus = LaneStatus.OK
    hostname: str | None = None
    summary: dict[str, Stat] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    busy: BusyRecord | None = None
    load_s: float | None = None
    builds: dict[str, Any] = field(default_factory=dict)
    job: JobSpec = field(default_factory=JobSpec)
