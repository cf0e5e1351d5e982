"""Two runs' envelopes cell by cell (pure): per lane in both runs and per cell both measured, the
ratio B/A of each winner figure (decode per stream, steady-state aggregate, time to first token)
with its range, and ``analysis.noise``'s verdict: B better or worse only when the two runs'
min–max ranges do not overlap and the samples make that unlikely by chance, else no measurable
difference. A cell only one run measured is listed as such.
"""

from __future__ import annotations

from typing import Any

from lanebench.analysis.noise import judge_stats
from lanebench.analysis.winners import FIGURES
from lanebench.config.lanes import EMULATED_MARK
from lanebench.records.envelope import CellKey, CellSummary
from lanebench.records.lane import LaneResult
from lanebench.records.samples import Stat
from lanebench.report.envelope import BUSY_CELL_CAPTION, fmt_depth, shows_envelope
from lanebench.report.fmt import Table
from lanebench.report.tables import fmt_stat


def _cell_rows(name: str, a: CellSummary, b: CellSummary, emulated: bool) -> list[dict[str, Any]]:
    rows = []
    for key, label, unit, higher, get in FIGURES:
        sa, sb = get(a), get(b)
        if sa is None and sb is None:
            continue
        v = judge_stats(sa, sb, higher)
        rows.append(
            {
                "lane": name,
                "depth": a.depth,
                "concurrency": a.concurrency,
                "figure": key,
                "label": label,
                "unit": unit,
                "a": sa.to_dict() if sa else None,
                "b": sb.to_dict() if sb else None,
                "ratio": v.ratio,
                "ratio_range": [v.ratio_low, v.ratio_high] if v.ratio_low is not None else None,
                "verdict": f"{v.outcome} ({v.test})" if v.judged else "–",
                "emulated": emulated,
                "busy_a": a.busy,
                "busy_b": b.busy,
                "reps_a": a.reps,
                "reps_b": b.reps,
            }
        )
    return rows


def envelope_compare_rows(a: list[LaneResult], b: list[LaneResult]) -> list[dict[str, Any]]:
    """One dict per (lane, cell, figure) for lanes both runs measured an envelope of; a cell only
    one run has: ``{"lane", "depth", "concurrency", "only_in": "A"|"B"}``. [] when neither run
    has an envelope to show (a plain comparison stays as it was)."""
    by_b = {lane.name: lane for lane in b if shows_envelope(lane)}
    out: list[dict[str, Any]] = []
    for la in a:
        lb = by_b.get(la.name)
        if lb is None or not shows_envelope(la):
            continue
        ca: dict[CellKey, CellSummary] = {c.key: c for c in la.envelope}
        cb: dict[CellKey, CellSummary] = {c.key: c for c in lb.envelope}
        emulated = la.lane.emulated or lb.lane.emulated
        for key in sorted(set(ca) | set(cb)):
            if key in ca and key in cb:
                out += _cell_rows(la.name, ca[key], cb[key], emulated)
            else:
                out.append(
                    {
                        "lane": la.name,
                        "depth": key[0],
                        "concurrency": key[1],
                        "only_in": "A" if key in ca else "B",
                    }
                )
    return out


def _side(r: dict[str, Any], side: str) -> str:
    d = r[side]
    if d is None:
        return "–"
    busy, reps = r[f"busy_{side}"], r[f"reps_{side}"]
    mark = f" [busy {busy}/{reps}]" if busy else ""
    return fmt_stat(Stat(**d), r["unit"], digits=3 if r["unit"] == "s" else 1) + mark


def _ratio(r: dict[str, Any]) -> str:
    if r["ratio"] is None:
        return "–"
    text = f"{r['ratio']:.3f}"
    lo, hi = r.get("ratio_range") or (None, None)
    if lo is not None and hi is not None and hi > lo:
        text += f" ({lo:.3f}–{hi:.3f})"
    return text


def envelope_compare_table(run_a: str, run_b: str, rows: list[dict[str, Any]]) -> Table:
    """The cell-by-cell comparison as a table."""
    table = Table(
        title=f"Envelope: Compare A = {run_a} with B = {run_b}",
        headers=["Lane", "Depth", "Streams", "Figure", "A", "B", "B/A", "Verdict"],
        caption="per cell both runs measured: medians (min–max); B/A with its range over every pair "
        "of samples; B better/worse only when the runs' min–max ranges do not overlap and the "
        "samples make that unlikely by chance (2 / C(n_a + n_b, n_a) <= 0.10), else no measurable "
        "difference; time to first token: lower is better",
    )
    for r in rows:
        name = f"{r['lane']} {EMULATED_MARK}" if r.get("emulated") else r["lane"]
        cell = [name, fmt_depth(r["depth"]), str(r["concurrency"])]
        if "only_in" in r:
            table.rows.append([*cell, "–", "–", "–", "–", f"only in run {r['only_in']}"])
            continue
        table.rows.append([*cell, r["label"], _side(r, "a"), _side(r, "b"), _ratio(r), r["verdict"]])
    if any(r.get("emulated") for r in rows):
        table.caption += (
            f"; {EMULATED_MARK}: emulated acceptance (the build's --spec-synth-*), output not the model's"
        )
    if any(r.get("busy_a") or r.get("busy_b") for r in rows):
        table.caption += f"; {BUSY_CELL_CAPTION}"
    return table
