"""Where results go as they are measured. The runner calls every sink on every event, so a
crash, Ctrl-C or kill loses at most the request in flight. ``JsonSink`` rewrites one JSON file
atomically after each event; the store (SQLite or PostgreSQL) is another sink."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord


class Sink(Protocol):
    """``lane_started`` and ``lane_finished`` get the lane's result; ``sample`` gets the lane's
    name and the record measured (written as soon as measured)."""

    def run_started(self, run: RunInfo) -> None: ...
    def lane_started(self, run: RunInfo, lane: LaneResult) -> None: ...
    def sample(self, run: RunInfo, lane: str, record: RequestRecord | AggregateRecord) -> None: ...
    def lane_finished(self, run: RunInfo, lane: LaneResult) -> None: ...
    def run_finished(self, run: RunInfo) -> None: ...


def run_document(run: RunInfo, lanes: list[LaneResult]) -> dict[str, Any]:
    """The JSON document of a run: run info, then every lane with its raw samples."""
    return {"run": run.to_dict(), "lanes": [lane.to_dict() for lane in lanes]}


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class JsonSink:
    """Keeps the whole run in one JSON file, rewritten after every measured sample."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lanes: list[LaneResult] = []

    def _flush(self, run: RunInfo) -> None:
        write_atomic(self.path, json.dumps(run_document(run, self.lanes), indent=2, default=str))

    def run_started(self, run: RunInfo) -> None:
        self._flush(run)

    def lane_started(self, run: RunInfo, lane: LaneResult) -> None:
        self.lanes.append(lane)
        self._flush(run)

    def sample(self, run: RunInfo, lane: str, record: RequestRecord | AggregateRecord) -> None:
        self._flush(run)

    def lane_finished(self, run: RunInfo, lane: LaneResult) -> None:
        self._flush(run)

    def run_finished(self, run: RunInfo) -> None:
        self._flush(run)
