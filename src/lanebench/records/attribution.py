"""The attribution experiment's record (``run --attribute``): its arms with every request, the
suspects it skipped, and its reading (``Effect`` per suspect and figure, the control's drift,
whether each variant generated the control's tokens). ``lanebench.analysis.attribution`` reads
the arms and writes the reading (``conclude``); plain records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from lanebench.records.codec import Record
from lanebench.records.samples import RequestRecord, Stat

CONTROL, CONTROL_AFTER = "control", "control_after"


@dataclass(slots=True)
class Arm(Record):
    """One server of the experiment: what was switched (``change``, [] for the control), its
    argv as run, and every request (warm-up ones too, kind ``warmup``)."""

    name: str = ""
    label: str = ""
    change: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    samples: list[RequestRecord] = field(default_factory=list)
    error: str | None = None
    log_path: str | None = None

    def measured(self) -> list[RequestRecord]:
        return [r for r in self.samples if r.kind == "single" and r.ok]


@dataclass(slots=True)
class Effect(Record):
    """What switching one suspect off did to one figure.

    ``saved_ms``: milliseconds per request the switch saved (control time − variant time; negative:
    it cost time); ``change_pct``: the figure's change in % of the control's median; ``moved``:
    the cause rule (None: fewer than ``analysis.attribution.MIN_N`` requests on a side)."""

    suspect: str
    label: str
    change: str
    figure: str
    control: Stat | None = None
    variant: Stat | None = None
    saved_ms: float | None = None
    change_pct: float | None = None
    moved: bool | None = None


@dataclass(slots=True)
class AttributionRecord(Record):
    """The experiment for one lane: its job, its arms, the suspects it skipped and why, and its
    reading as of the last arm (``effects``, ``drift``: figures on which the control moved
    between its two runs, ``same_tokens``: per variant; kept for readers of the document, and
    recomputable from the arms)."""

    n_in: int = 0
    n_out: int = 0
    reps: int = 0
    warmup: int = 0
    arms: list[Arm] = field(default_factory=list)
    skipped: list[list[str]] = field(default_factory=list)  # [suspect, why not]
    note: str = ""
    effects: list[Effect] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    same_tokens: dict[str, bool | None] = field(default_factory=dict)

    def control(self) -> list[RequestRecord]:
        """The pooled control requests (before and after the variants)."""
        return [r for a in self.arms if a.name in (CONTROL, CONTROL_AFTER) for r in a.measured()]

    def variants(self) -> list[Arm]:
        return [a for a in self.arms if a.name not in (CONTROL, CONTROL_AFTER)]
