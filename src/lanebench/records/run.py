"""One invocation of ``lanebench run`` (``RunInfo``): what job, on which host, with which builds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lanebench.config.job import JobSpec
from lanebench.records.lane import RunStatus


@dataclass(slots=True)
class RunInfo:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
