"""Two runs side by side: per lane, the ratio B/A of each figure, and whether the difference is
larger than the runs' own spread (their min–max ranges do not overlap) or within noise.
"""

from __future__ import annotations

from typing import Any

from lanebench.figures import FIGURES, Fig
from lanebench.fmt import Table
from lanebench.records import LaneResult, Stat
from lanebench.report.tables import fmt_pct, fmt_stat

# (summary key, label, unit, +1 when higher is better), from the one table of figures
_KEYS = (Fig.PREFILL, Fig.DECODE, Fig.NORMALIZED_WALL, Fig.AGGREGATE, Fig.WALL, Fig.ACCEPTANCE)
COMPARED = tuple((f.key, f.label, f.unit, f.better) for f in (FIGURES[k] for k in _KEYS))


def verdict(a: Stat | None, b: Stat | None, better: int) -> str:
    """``within noise`` when the ranges overlap; else which run is better, beyond the spread."""
    if a is None or b is None:
        return "–"
    if a.n < 2 and b.n < 2:
        return "no spread to judge (1 sample each)"
    if b.min <= a.max and a.min <= b.max:
        return "within noise"
    higher = b.median > a.median
    return "B better (beyond spread)" if higher == (better > 0) else "B worse (beyond spread)"


def ratio(a: Stat | None, b: Stat | None) -> float | None:
    if a is None or b is None or a.median == 0:
        return None
    return b.median / a.median


def compare_rows(a: list[LaneResult], b: list[LaneResult]) -> list[dict[str, Any]]:
    """One dict per (lane, figure) for lanes in both runs, then lanes only in one of them."""
    by_b = {lane.name: lane for lane in b}
    out: list[dict[str, Any]] = []
    for la in a:
        lb = by_b.get(la.name)
        if lb is None:
            out.append({"lane": la.name, "only_in": "A"})
            continue
        emulated = la.lane.emulated or lb.lane.emulated
        for key, label, unit, better in COMPARED:
            sa, sb = la.summary.get(key), lb.summary.get(key)
            if sa is None and sb is None:
                continue
            if key == Fig.ACCEPTANCE and emulated:
                label += " [emulated]"  # the build's --spec-synth-*: never read as a measured change
            out.append(
                {
                    "lane": la.name,
                    "figure": key,
                    "label": label,
                    "unit": unit,
                    "a": sa.to_dict() if sa else None,
                    "b": sb.to_dict() if sb else None,
                    "ratio": ratio(sa, sb),
                    "verdict": verdict(sa, sb, better),
                    "status": f"{la.status} → {lb.status}",
                }
            )
        if (rss := _peak_rss_row(la, lb)) is not None:
            out.append(rss)
    names_a = {lane.name for lane in a}
    out += [{"lane": lane.name, "only_in": "B"} for lane in b if lane.name not in names_a]
    return out


def _peak_rss_row(la: LaneResult, lb: LaneResult) -> dict[str, Any] | None:
    """Peak resident memory of the server's process tree (one figure per run: no spread)."""
    ma = la.memory.peak_rss if la.memory else None
    mb = lb.memory.peak_rss if lb.memory else None
    if ma is None and mb is None:
        return None
    sa = Stat(ma, ma, ma, 1) if ma is not None else None
    sb = Stat(mb, mb, mb, 1) if mb is not None else None
    return {
        "lane": la.name,
        "figure": "peak_rss_mib",
        "label": "Peak RSS",
        "unit": "MiB",
        "a": sa.to_dict() if sa else None,
        "b": sb.to_dict() if sb else None,
        "ratio": ratio(sa, sb),
        "verdict": verdict(sa, sb, -1),
        "status": f"{la.status} → {lb.status}",
    }


def _fmt(d: dict[str, Any] | None, unit: str) -> str:
    if d is None:
        return "–"
    s = Stat(**d)
    if unit == "":
        return fmt_pct(s)
    return fmt_stat(s, unit)


def compare_table(run_a: str, run_b: str, rows: list[dict[str, Any]]) -> Table:
    """The comparison as a table (markdown or terminal)."""
    table = Table(
        title=f"Compare A = {run_a} with B = {run_b}",
        headers=["Lane", "Figure", "A", "B", "B/A", "Verdict"],
        caption="medians (min–max); beyond spread = the two runs' min–max ranges do not overlap",
    )
    for r in rows:
        if "only_in" in r:
            table.rows.append([r["lane"], "–", "–", "–", "–", f"only in run {r['only_in']}"])
            continue
        ratio_text = f"{r['ratio']:.3f}" if r["ratio"] is not None else "–"
        table.rows.append(
            [
                r["lane"],
                r["label"],
                _fmt(r["a"], r["unit"]),
                _fmt(r["b"], r["unit"]),
                ratio_text,
                r["verdict"],
            ]
        )
    return table
