"""What only some engines can do, asked of the engine: ``Engine``'s optional hooks.

The pipeline never tests an engine's name or the shape of its plan to decide what it can do; it
calls these hooks, and an engine that lacks a capability answers ``Unavailable`` with the one
line the lane's record shows. The defaults here say "not available for engine X", so a new
engine is one module that overrides only the hooks it can serve:

- ``kernel_view``: a measurement of the kernels beside the server's figures (llama.cpp: its
  ``llama-bench``), planned as a ``KernelView`` that lanes with the same ``key`` share;
- ``quality_tool``: the build and model that llama.cpp's ``llama-perplexity`` scores the lane
  with (``QualityTool``);
- ``placement``: where the lane's model ran (the lane's placement fields, the devices the build
  saw, what each RPC server answered), a dict for ``LaneResult.placement``;
- ``memory_fit``: the lane's memory estimated before it starts and laid out over the places it
  would run (``MemoryFit``), taken once when the engine plans the lane (``LanePlan.fit``), for
  the fit check and the lane's measured memory;
- ``memory_sources``: what to sample while the lane runs: its process groups, and a log that
  states a memory breakdown lanebench can read (``MemorySources``);
- ``fingerprint`` and ``backends``: what exactly served the lane (the build), and the compute
  backends its log named;
- ``attribution_suspects``: the server features that may cost time outside the kernels, each
  as the lane's plan with that one switched off (``Suspects``);
- ``doctor``: what ``lanebench doctor`` checks of the engine's installation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from lanebench.config.job import JobSpec
from lanebench.memory.estimate import LaneEstimate
from lanebench.memory.layout import Layout, Machine
from lanebench.records.baseline import BaselineRecord
from lanebench.records.placement import PlacementRecord

if TYPE_CHECKING:
    from lanebench.engines.base import Endpoint, LanePlan


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A capability this engine (or this lane on it) does not have; ``why`` is one line."""

    why: str


@dataclass(slots=True)
class KernelView:
    """A kernel measurement of a lane, planned but not run.

    ``key``: lanes whose measurement would be the same (same tool command lines) share one run;
    ``notes``: this lane's own (settings the tool has no flag for); ``measure(log_path,
    load_timeout_s, retry)`` runs it (helper processes log beside ``log_path``; ``retry``: run
    once more when the machine was busy) and returns llama-bench's figures in tokens per second,
    or raises ``LaneFailed``."""

    key: str
    notes: list[str]
    measure: Callable[[Path, float, bool], BaselineRecord]


@dataclass(frozen=True, slots=True)
class QualityTool:
    """What scoring a lane with llama.cpp's ``llama-perplexity`` needs: the server build (the
    tool sits beside it, and its ``--help`` says which of the lane's flags the tool shares) and
    the model file the lane serves."""

    server_bin: Path
    model: Path


class MemoryFit(Protocol):
    """A launched lane's memory before it starts (MiB): the estimate from its model files, the
    free memory of the places it would run on, and the estimate laid out over them."""

    @property
    def estimate(self) -> LaneEstimate: ...
    def machine(self, ram_mib: float | None) -> Machine: ...
    def layout(self, machine: Machine) -> Layout: ...


@dataclass(slots=True)
class MemorySources:
    """What to read a running lane's memory from: ``leaders``, the pids whose process groups make
    up the lane (server first), sampled for RSS and GPU memory; ``log``, the server log when it
    states the memory breakdown lanebench reads (llama.cpp's buffers), else None; ``env``, the
    server's environment (to match GPUs to the log's devices); ``notes`` for the record."""

    leaders: list[int]
    log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SuspectVariant:
    """One suspect of the attribution experiment: the lane's plan with it switched off, and the
    server arguments that switch it off (``change``)."""

    name: str
    label: str
    change: list[str]
    plan: LanePlan


@dataclass(slots=True)
class Suspects:
    """The suspects that apply to a lane on its build, and ``[name, why not]`` for the others."""

    variants: list[SuspectVariant] = field(default_factory=list)
    skipped: list[list[str]] = field(default_factory=list)


def doctor_item(
    what: str, ok: bool, detail: str, fix: str = "", missing: bool = False, warn: bool = False
) -> dict[str, Any]:
    """One line of ``lanebench doctor``: ``ok`` False comes with a ``fix``."""
    return {"what": what, "ok": ok, "detail": detail, "fix": fix, "missing": missing, "warn": warn}


def process_leaders(endpoint: Endpoint) -> list[int]:
    """The pids whose process groups make up a served lane: ``endpoint.process_group_pids`` (a
    list of ints, the server first, every one a group leader) when the endpoint has it and it is
    not empty, else ``[endpoint.proc.pid]``; [] for neither (an attached server)."""
    leaders = getattr(endpoint, "process_group_pids", None)
    if leaders:
        return [int(p) for p in leaders]
    proc = getattr(endpoint, "proc", None)
    return [proc.pid] if proc is not None else []


class EngineHooks:
    """The optional capabilities, each answering "not available for engine X" by default."""

    name: ClassVar[str]
    launches: ClassVar[bool] = True

    def kernel_view(
        self, plan: LanePlan, job: JobSpec, reps: int, depth: int = 0
    ) -> KernelView | Unavailable:
        """The lane's kernel view for ``job`` with ``reps`` repetitions, after ``depth`` tokens of
        context."""
        return Unavailable(f"engine {self.name!r}: no kernel view (lanebench has llama.cpp's llama-bench)")

    def quality_tool(self, plan: LanePlan) -> QualityTool | Unavailable:
        return Unavailable(
            f"engine {self.name!r}: no quality tool (lanebench scores lanes with llama.cpp's "
            "llama-perplexity, on the build and model of a server it starts)"
        )

    def placement(self, plan: LanePlan, endpoint: Endpoint) -> PlacementRecord | None:
        """None: the engine places the model itself, and the lane says nothing about it."""
        return None

    def memory_fit(self, plan: LanePlan) -> MemoryFit | Unavailable:
        return Unavailable(
            f"engine {self.name!r}: no memory estimate (lanebench estimates llama.cpp's layout)"
        )

    def memory_sources(self, plan: LanePlan, endpoint: Endpoint) -> MemorySources | Unavailable:
        """A server lanebench started: its process groups, and no log it can read a breakdown
        from; an attached one: nothing of it is lanebench's to sample."""
        if not self.launches:
            return Unavailable(f"engine {self.name!r}: attached to a server lanebench did not start")
        note = f"engine {self.name!r}: no memory breakdown from its log (lanebench reads llama.cpp's)"
        return MemorySources(process_leaders(endpoint), env=dict(plan.lane.env), notes=[note])

    def fingerprint(self, build: str, build_info: dict[str, Any]) -> dict[str, Any]:
        """What serves lanes of ``build`` (a plan's ``build``), as far as planning learnt it
        (``build_info``): asked once per build and run, of a build, not of a lane."""
        return {"engine": self.name, "build": build, **build_info}

    def backends(self, log_path: Path | None) -> list[str]:
        """The compute backends the lane's server log named (empty: it names none lanebench reads)."""
        return []

    def attribution_suspects(self, plan: LanePlan) -> Suspects | Unavailable:
        return Unavailable(
            f"engine {self.name!r}: no attribution (lanebench knows suspects of llama-server's, "
            "switched on servers it starts)"
        )

    def doctor(self, smoke: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(``doctor_item`` lines, facts for ``--json``) about the engine's installation here;
        ``smoke``: also start it once on its default model."""
        return [doctor_item(f"engine {self.name}", True, "lanebench checks nothing of it here")], {}
