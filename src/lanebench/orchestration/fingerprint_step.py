"""Fingerprints as a step of the run: the host and each build once per run (the build as its
engine fingerprints it), each model file once, each RPC endpoint as it answered.

Collecting runs binaries and hashes model files, so it lives here and not in the store, which
only keeps what it is handed. Collecting never fails a run: a fingerprint that cannot be taken
is stored as the reason why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lanebench.engines.hooks import EngineHooks
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


@dataclass(frozen=True, slots=True)
class Build:
    """One build of a run, as its engine fingerprints it."""

    engine: EngineHooks
    build: str
    info: dict[str, Any]


class FingerprintSink:
    """A sink beside the store's: takes each fingerprint once and hands it to the store;
    ``builds``: the run's (``pipeline.RunPlan.builds``), each fingerprinted by its engine."""

    def __init__(self, store: FingerprintStore, builds: Sequence[Build] = ()) -> None:
        self.store = store
        self.builds = list(builds)

    def _add(self, run: RunInfo, kind: str, key: str, collect: Callable[..., Any], *args: Any) -> None:
        if not self.store.has_fingerprint(run, kind, key):
            self.store.add_fingerprint(run, kind, key, safely(collect, *args))

    def run_started(self, run: RunInfo) -> None:
        self._add(run, "host", str(run.host.get("hostname") or "host"), fp.host_fingerprint)
        for b in self.builds:
            self._add(run, "build", b.build, b.engine.fingerprint, b.build, b.info)

    def lane_started(self, run: RunInfo, lane: LaneResult) -> None:
        spec = lane.lane
        for path in (spec.model, spec.draft.path if spec.draft else None):
            if path:
                self._add(run, "model", str(path), fp.model_fingerprint, Path(str(path)))

    def sample(self, run: RunInfo, lane: str, record: RequestRecord | AggregateRecord) -> None:
        return None

    def lane_finished(self, run: RunInfo, lane: LaneResult) -> None:
        for probe in lane.placement.rpc if lane.placement else []:  # each RPC endpoint, as it answered
            self._add(run, "rpc", probe.endpoint, probe.to_dict)

    def run_finished(self, run: RunInfo) -> None:
        return None
