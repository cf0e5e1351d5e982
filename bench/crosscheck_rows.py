"""The rows of ``bench/crosscheck.py`` (pure): lanebench's figures read from its ``--json``, the
script's own figures from its requests and llama-bench runs, side by side with ratio and verdict.

lanebench's side is read with lanebench's own record types and rules (``measured_singles``,
``outside_ms``, ``causes``): it is lanebench's figure. The script's side never goes through
lanebench code. Rates are tok/s, times ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crosscheck_core import Figure, Point, StreamResult, change_of, figure_of
from lanebench.analysis.attribution import BY_KEY, AttributionRecord, causes, effect, outside_ms
from lanebench.records.lane import LaneResult

# (key, label, unit); the kernel view is llama-bench, engine the server's timings, client a clock
FIGURES = (
    ("kernel_prefill", "kernel prefill", "tok/s"),
    ("kernel_decode", "kernel decode", "tok/s"),
    ("engine_prefill", "engine prefill", "tok/s"),
    ("engine_decode", "engine decode", "tok/s"),
    ("client_prefill", "client prefill (n_in / TTFT)", "tok/s"),
    ("client_decode", "client decode", "tok/s"),
    ("outside_ms", "TTFT beyond the prompt timer", "ms"),
)
# lanebench's busy-record key for each figure (``records.figures.Fig`` and the kernel's keys)
BUSY_KEYS = {
    "kernel_prefill": "kernel_prefill_tps",
    "kernel_decode": "kernel_decode_tps",
    "engine_prefill": "prefill_tps",
    "engine_decode": "decode_tps",
    "client_prefill": "prefill_client_tps",
    "client_decode": "decode_client_tps",
}
_SUMMARY = {
    "engine_prefill": "prefill_tps",
    "engine_decode": "decode_tps",
    "client_prefill": "prefill_client_tps",
    "client_decode": "decode_client_tps",
}


@dataclass(slots=True)
class Effect:
    """One suspect switched off: client prefill of the control and of the variant, the change."""

    name: str
    change: str
    control: Figure | None
    variant: Figure | None
    named: str = ""  # where lanebench named it a cause ('' = not named)
    error: str = ""

    def pct_ms(self, n_in: int) -> tuple[float, float] | None:
        return change_of(self.control, self.variant, n_in)


@dataclass(slots=True)
class Side:
    """One side's figures for a point, with marks (busy machine, errors) per figure."""

    figures: dict[str, Figure | None] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # what the figures came from, for --json


def _stat(d: Any) -> Figure | None:
    if not isinstance(d, dict) or not isinstance(d.get("median"), int | float):
        return None
    return Figure(float(d["median"]), float(d["min"]), float(d["max"]), int(d.get("n") or 0))


def _kernel(base: dict[str, Any], which: str) -> Figure | None:
    value = base.get(f"{which}_tps")
    if not isinstance(value, int | float):
        return None
    samples = [float(v) for v in base.get(f"{which}_samples") or []] or [float(value)]
    return Figure(float(value), min(samples), max(samples), len(samples))


def lanebench_side(doc: Any, source: str) -> Side:
    """lanebench's figures for the one lane of ``doc`` (its ``run --json``); ``ValueError``
    naming ``source`` when it is not such a document."""
    lanes = doc.get("lanes") if isinstance(doc, dict) else None
    if not isinstance(lanes, list) or len(lanes) != 1 or not isinstance(lanes[0], dict):
        raise ValueError(f"{source}: not a lanebench run document with one lane")
    lane = lanes[0]
    result = LaneResult.from_dict(lane)
    side = Side(argv=list(result.argv))
    if result.error:
        side.notes.append(f"lanebench: the lane failed: {result.error.splitlines()[0][:200]}")
    summary = lane.get("summary") or {}
    for key, name in _SUMMARY.items():
        side.figures[key] = _stat(summary.get(name))
    base = lane.get("baseline") or {}  # the kernel view as --json wrote it
    side.figures["kernel_prefill"] = _kernel(base, "prefill")
    side.figures["kernel_decode"] = _kernel(base, "decode")
    if base.get("note"):
        side.notes.append(f"lanebench's kernel view: {base['note']}")
    side.figures["outside_ms"] = figure_of(outside_ms(r) for r in result.measured_singles())
    busy = result.busy.figures if result.busy else {}
    for key, busy_key in BUSY_KEYS.items():
        if busy_key in busy:
            side.marks[key] = f"[busy: {busy[busy_key]:.2f} cores]"
    if result.attribution is not None:
        side.effects = lanebench_effects(result.attribution)
    return side


def _named(rec: AttributionRecord) -> dict[str, str]:
    out: dict[str, str] = {}
    for figure in ("prefill", "decode"):
        for step in ("kernel_to_engine", "engine_to_client"):
            for e in causes(rec, figure, step):
                where = f"{figure} {step.replace('_to_', ' → ').replace('_', ' ')}"
                out[e.suspect] = f"{out[e.suspect]}, {where}" if e.suspect in out else where
    return out


def lanebench_effects(rec: AttributionRecord) -> list[Effect]:
    """Each suspect lanebench tested: its client prefill, control against variant, and where
    lanebench named it a cause ('Where the Time Goes')."""
    named = _named(rec)
    out = []
    for arm in rec.variants():
        e = effect(rec, arm, BY_KEY["client_prefill_tps"])
        c, v = e.control, e.variant
        out.append(
            Effect(
                arm.name,
                " ".join(arm.change),
                Figure(c.median, c.min, c.max, c.n) if c else None,
                Figure(v.median, v.min, v.max, v.n) if v else None,
                named.get(arm.name, ""),
                arm.error or "",
            )
        )
    return out


def own_figures(requests: Sequence[StreamResult], n_in: int) -> dict[str, Figure | None]:
    """The script's engine and client figures from its own measured requests."""
    ok = [r for r in requests if r.ok]
    return {
        "engine_prefill": figure_of(r.timings.get("prompt_per_second") for r in ok),
        "engine_decode": figure_of(r.timings.get("predicted_per_second") for r in ok),
        "client_prefill": figure_of(r.prefill_tps(n_in) for r in ok),
        "client_decode": figure_of(r.decode_tps for r in ok),
        "outside_ms": figure_of(r.outside_ms() for r in ok),
    }


def request_notes(requests: Sequence[StreamResult], n_in: int, n_out: int) -> list[str]:
    """What a reader must know about the script's own requests: failures, other lengths."""
    notes = [f"request failed: {r.error}" for r in requests if not r.ok]
    for r in requests:
        if not r.ok:
            continue
        if r.timings.get("prompt_n") not in (None, n_in):
            notes.append(f"the server prefilled {r.timings['prompt_n']} tokens, not {n_in}")
        if r.timings.get("predicted_n") not in (None, r.tokens):
            notes.append(f"stream count {r.tokens} but timings.predicted_n {r.timings['predicted_n']}")
        if r.tokens != n_out:
            notes.append(f"{r.tokens} tokens generated, not {n_out}")
    return sorted(set(notes))


@dataclass(slots=True)
class Row:
    """One line of the table: a figure on both sides, or a suspect's effect on both sides."""

    figure: str
    unit: str
    how: str
    lanebench: Figure | None
    own: Figure | None
    lanebench_mark: str = ""
    own_mark: str = ""
    pct: tuple[float | None, float | None] = (None, None)  # effects: change in % (lanebench, own)

    @property
    def is_effect(self) -> bool:
        return self.unit == "ms saved"

    def ratio(self) -> float | None:
        if self.lanebench is None or self.own is None or self.own.value == 0:
            return None
        return self.lanebench.value / self.own.value

    def to_dict(self, tolerance_pct: float) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "unit": self.unit,
            "how": self.how,
            "lanebench": self.lanebench.to_dict() if self.lanebench else None,
            "independent": self.own.to_dict() if self.own else None,
            "lanebench_mark": self.lanebench_mark,
            "independent_mark": self.own_mark,
            "change_pct": {"lanebench": self.pct[0], "independent": self.pct[1]} if self.is_effect else None,
            "ratio": self.ratio(),
            "verdict": verdict(self, tolerance_pct),
        }


def _how(key: str, p: Point, reps: int) -> str:
    return {
        "kernel_prefill": f"llama-bench pp{p.n_in} @ d0 (mean of {reps})",
        "kernel_decode": f"llama-bench tg{p.n_out} @ d{p.n_in} (mean of {reps})",
        "engine_prefill": "server timings.prompt_per_second (median)",
        "engine_decode": "server timings.predicted_per_second (median)",
        "client_prefill": f"{p.n_in} / time to first token (median)",
        "client_decode": "tokens after the first / their time (median)",
        "outside_ms": "time to first token − timings.prompt_ms (median)",
    }[key]


def point_rows(lb: Side, own: Side, p: Point, reps: int) -> list[Row]:
    """The rows of one point: every figure, then every suspect lanebench tested."""
    rows = [
        Row(
            label,
            unit,
            _how(key, p, reps),
            lb.figures.get(key),
            own.figures.get(key),
            lb.marks.get(key, ""),
            own.marks.get(key, ""),
        )
        for key, label, unit in FIGURES
    ]
    mine = {e.name: e for e in own.effects}
    for e in lb.effects:
        o = mine.get(e.name)
        lb_change = e.pct_ms(p.n_in)
        own_change = o.pct_ms(p.n_in) if o else None
        rows.append(
            Row(
                f"client prefill with {e.change}",
                "ms saved",
                f"fresh servers: {e.change} against the lane as it runs",
                Figure(lb_change[1], lb_change[1], lb_change[1], e.variant.n if e.variant else 0)
                if lb_change
                else None,
                Figure(own_change[1], own_change[1], own_change[1], o.variant.n if o and o.variant else 0)
                if own_change
                else None,
                f"named: {e.named}" if e.named else ("not named" if not e.error else f"failed: {e.error}"),
                o.error if o and o.error else "",
                (lb_change[0] if lb_change else None, own_change[0] if own_change else None),
            )
        )
    return rows


def verdict(row: Row, tolerance_pct: float) -> str:
    """One line: do the two sides agree within ``tolerance_pct``, and if not, is it noise?"""
    if row.lanebench is None:
        return "no lanebench figure"
    if row.own is None:
        return "no independent figure"
    if row.is_effect:
        return _effect_verdict(row, tolerance_pct)
    ratio = row.ratio()
    if ratio is None:
        return "independent figure is 0"
    diff = 100 * (ratio - 1)
    if abs(diff) <= tolerance_pct:
        return f"agree within {tolerance_pct:g}% ({diff:+.1f}%)"
    a, b = row.lanebench, row.own
    if a.low <= b.high and b.low <= a.high:
        return f"lanebench {diff:+.1f}%: the repetitions' ranges overlap (noise?)"
    return f"lanebench {diff:+.1f}%, beyond both ranges"


def _effect_verdict(row: Row, tolerance_pct: float) -> str:
    lb_pct, own_pct = row.pct
    if lb_pct is None or own_pct is None or row.lanebench is None or row.own is None:
        return "no figure on one side"
    if abs(lb_pct) <= tolerance_pct and abs(own_pct) <= tolerance_pct:
        return f"neither side moved client prefill by more than {tolerance_pct:g}%"
    if (lb_pct > 0) != (own_pct > 0):
        return f"opposite directions ({lb_pct:+.1f}% against {own_pct:+.1f}%)"
    ratio = row.ratio()
    shown = f"{ratio:.2f}×" if ratio is not None else "–"
    return f"same direction; lanebench's saving is {shown} the independent one"


def cell(f: Figure | None, unit: str, mark: str = "", pct: float | None = None) -> str:
    """A figure as the table shows it: median (min–max), or an effect as % and ms."""
    if f is None:
        text = "–"
    elif unit == "ms saved":
        text = f"{pct:+.1f}% ({f.value:+,.0f} ms)" if pct is not None else f"{f.value:+,.0f} ms"
    else:
        text = f"{f.value:,.1f} ({f.low:,.1f}–{f.high:,.1f}) {unit}"
    return f"{text} {mark}".strip()


def table_cells(row: Row, tolerance_pct: float) -> list[str]:
    """figure | lanebench | independent | ratio | verdict | how measured."""
    ratio = row.ratio()
    return [
        row.figure,
        cell(row.lanebench, row.unit, row.lanebench_mark, row.pct[0]),
        cell(row.own, row.unit, row.own_mark, row.pct[1]),
        f"{ratio:.3f}" if ratio is not None else "–",
        verdict(row, tolerance_pct),
        row.how,
    ]


HEADERS = ("figure", "lanebench", "independent", "ratio", "verdict", "how measured")


def markdown_table(rows: Sequence[Row], tolerance_pct: float) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        cells = [c.replace("|", "\\|") for c in table_cells(row, tolerance_pct)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
