"""Fingerprints as a step of the run: the host and each build once per run, each model file
once, each RPC endpoint as it answered, and the compute backends a lane's server log named.

Collecting runs binaries and hashes model files, so it lives here and not in the store, which
only keeps what it is handed. Collecting never fails a run: a fingerprint that cannot be taken
is stored as the reason why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lanebench.orchestration import fingerprint as fp
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord


class FingerprintStore(Protocol):
    """What this step needs of the store's sink."""

    def has_fingerprint(self, run: RunInfo, kind: str, key: str) -> bool: ...
    def add_fingerprint(self, run: RunInfo, kind: str, key: str, data: dict[str, Any]) -> None: ...


def safely(collect: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """A fingerprint, or the reason it could not be taken (never an exception)."""
    try:
        return dict(collect(*args))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def lane_backends(log_path: str | None, limit: int = 4_000_000) -> list[str]:
    """The compute backends a lane's server log named (empty without a log)."""
    if not log_path:
        return []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return fp.backends_from_log(f.read(limit))
    except OSError:
        return []


class FingerprintSink:
    """A sink beside the store's: takes each fingerprint once and hands it to the store."""

    def __init__(self, store: FingerprintStore) -> None:
        self.store = store

    def _add(self, run: RunInfo, kind: str, key: str, collect: Callable[..., Any], *args: Any) -> None:
        if not self.store.has_fingerprint(run, kind, key):
            self.store.add_fingerprint(run, kind, key, safely(collect, *args))

    def run_started(self, run: RunInfo) -> None:
        self._add(run, "host", str(run.host.get("hostname") or "host"), fp.host_fingerprint)
        for binary, dialect in run.builds.items():
            self._add(run, "build", binary, fp.build_fingerprint, Path(binary), dialect)

    def lane_started(self, run: RunInfo, lane: LaneResult) -> None:
        spec = lane.lane
        for path in (spec.model, spec.draft.path if spec.draft else None):
            if path:
                self._add(run, "model", str(path), fp.model_fingerprint, Path(str(path)))

    def sample(self, run: RunInfo, lane: LaneResult, record: RequestRecord | AggregateRecord) -> None:
        return None

    def lane_finished(self, run: RunInfo, lane: LaneResult) -> None:
        for probe in lane.placement.rpc if lane.placement else []:  # each RPC endpoint, as it answered
            self._add(run, "rpc", probe.endpoint, probe.to_dict)

    def run_finished(self, run: RunInfo) -> None:
        return None
