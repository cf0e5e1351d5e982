"""Quality against the reference lane: the table beside the seed's, the compare rows, and the
speed-vs-quality points (pure functions over lane results).

Every figure carries llama-perplexity's own ± (one standard error); two lanes differ beyond
noise when their difference exceeds twice the combined error. A speculative lane shows its
verdict (lossless, not lossless, unchecked), never a figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lanebench.quality.greedy import verdict
from lanebench.records.figures import FIGURES, Fig, label
from lanebench.records.lane import LaneResult
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.report.fmt import Table

NOISE_SIGMAS = 2.0  # a difference within this many combined standard errors is "within noise"


def _pm(value: float | None, err: float | None, digits: int, unit: str = "") -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    if err is not None:
        text += f" ± {err:.{digits}f}"
    return text + unit


SHORT_VERDICT = {
    QualityStatus.LOSSLESS: "lossless (no KLD: speculative)",
    QualityStatus.NOT_LOSSLESS: "NOT LOSSLESS (no KLD: speculative)",
    QualityStatus.UNCHECKED: "unknown (speculative, unchecked)",
}


def fmt_kld(q: QualityRecord) -> str:
    """``0.1142 ± 0.0102 (p99 0.617)``; the reference's own row is ``0 (reference)``; a
    speculative lane's cell is its verdict in words."""
    if q.speculative:
        return SHORT_VERDICT[q.status]
    if q.kld_mean is None:
        return "–"
    if q.kld_err is None:
        return "0 (reference)" if q.status == QualityStatus.REFERENCE else f"{q.kld_mean:.4f}"
    text = _pm(q.kld_mean, q.kld_err, 4)
    return text + (f" (p99 {q.kld_p99:.3f})" if q.kld_p99 is not None else "")


def quality_note(lane: LaneResult) -> str:
    q = lane.quality
    assert q is not None
    if q.speculative:
        return ("⚠ " if q.status == QualityStatus.NOT_LOSSLESS else "") + verdict(q)
    parts: list[str] = []
    if q.status == QualityStatus.REFERENCE:
        parts.append("reference")
    elif q.status in (QualityStatus.UNAVAILABLE, QualityStatus.FAILED):
        parts.append(f"no figures ({q.status})")
    if q.note:
        parts.append(q.note)
    return "; ".join(parts)


def _model(lane: LaneResult) -> str:
    return lane.lane.model.name if lane.lane.model else "the embedded 270M (Q4_K_M)"


def quality_table(lanes: Sequence[LaneResult]) -> Table | None:
    """Lane · Model/quant · KV · PPL · KLD mean (p99) · Same top-1 · Notes; None without quality."""
    with_q = [lane for lane in lanes if lane.quality is not None]
    if not with_q:
        return None
    ref = next((lane.quality.reference for lane in with_q if lane.quality and lane.quality.reference), None)
    scored = max((lane.quality.tokens for lane in with_q if lane.quality), default=0)
    ctx = max((lane.quality.ctx for lane in with_q if lane.quality), default=0)
    table = Table(
        title="Quality vs reference",
        headers=["Lane", "Model/quant", "KV", "PPL", "KLD mean (p99)", "Same top-1", "Notes"],
        caption=(
            f"reference: {ref!r}; {scored:,} tokens scored in chunks of {ctx} by the build's own "
            "llama-perplexity --kl-divergence; KLD in nats per token; ± one standard error"
            if ref
            else "no reference lane could be measured"
        ),
    )
    for lane in with_q:
        q = lane.quality
        assert q is not None
        table.rows.append(
            [
                lane.name,
                _model(lane),
                lane.lane.kv.upper(),
                _pm(q.ppl, q.ppl_err, 3),
                fmt_kld(q),
                _pm(q.same_top1, q.same_top1_err, 2, "%"),
                quality_note(lane),
            ]
        )
    return table


# the quality figures compared (the figures table's), each with the record field of its ± error
COMPARED = tuple((FIGURES[k], err) for k, err in ((Fig.KLD_MEAN, "kld_err"), (Fig.SAME_TOP1, "same_top1_err"),
                                                  (Fig.PPL, "ppl_err")))  # fmt: skip


def delta_verdict(a: float, ea: float | None, b: float, eb: float | None, better: int) -> str:
    """``within noise`` when |b − a| ≤ 2·√(ea² + eb²); else which is better, beyond the errors."""
    err = math.hypot(ea or 0.0, eb or 0.0)
    if abs(b - a) <= NOISE_SIGMAS * err:
        return "within noise"
    if err == 0.0 and b == a:
        return "within noise"
    return "B better (beyond errors)" if (b > a) == (better > 0) else "B worse (beyond errors)"


def quality_compare_rows(a: Sequence[LaneResult], b: Sequence[LaneResult]) -> list[dict[str, Any]]:
    """Per lane in both runs with quality figures: B − A of each quality figure, its combined
    error and a verdict."""
    by_b = {lane.name: lane for lane in b}
    out: list[dict[str, Any]] = []
    for la in a:
        lb = by_b.get(la.name)
        qa, qb = la.quality, lb.quality if lb else None
        if qa is None or qb is None:
            continue
        for fig, err_attr in COMPARED:
            va, vb = getattr(qa, fig.field), getattr(qb, fig.field)
            if va is None or vb is None:
                continue
            ea, eb = getattr(qa, err_attr), getattr(qb, err_attr)
            out.append(
                {
                    "lane": la.name,
                    "figure": str(fig.key),
                    "label": label(fig.key),
                    "a": va,
                    "a_err": ea,
                    "b": vb,
                    "b_err": eb,
                    "delta": vb - va,
                    "delta_err": math.hypot(ea or 0.0, eb or 0.0),
                    "verdict": delta_verdict(va, ea, vb, eb, fig.better),
                }
            )
    return out


def quality_compare_table(run_a: str, run_b: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title=f"Quality: A = {run_a} vs B = {run_b}",
        headers=["Lane", "Figure", "A", "B", "B − A", "Verdict"],
        caption=f"± one standard error; within noise = |B − A| ≤ {NOISE_SIGMAS:g} × the combined error",
    )
    for r in rows:
        digits = 4 if r["figure"] == str(Fig.KLD_MEAN) else 3
        table.rows.append(
            [
                r["lane"],
                r["label"],
                _pm(r["a"], r["a_err"], digits),
                _pm(r["b"], r["b_err"], digits),
                _pm(r["delta"], r["delta_err"], digits),
                r["verdict"],
            ]
        )
    return table


def speed_quality_points(lanes: Sequence[LaneResult]) -> list[tuple[str, float, float, bool]]:
    """(lane, mean KLD, median decode tok/s, on the Pareto front) for lanes with both figures
    measured; the front: no other lane is at least as fast with no more KLD (and better in one).
    A lane without a measured KLD is never a point (``left_out`` says why)."""
    pts = []
    for lane in lanes:
        q, dec = lane.quality, lane.summary.get(Fig.DECODE)
        if q is not None and _measured_kld(q) and dec is not None and not lane.lane.emulated:
            assert q.kld_mean is not None
            pts.append((lane.name, q.kld_mean, dec.median))
    out = []
    for name, kld, speed in pts:
        dominated = any(k <= kld and s >= speed and (k < kld or s > speed) for n, k, s in pts if n != name)
        out.append((name, kld, speed, not dominated))
    return out


def _measured_kld(q: QualityRecord) -> bool:
    return q.status in (QualityStatus.REFERENCE, QualityStatus.MEASURED) and q.kld_mean is not None


def left_out(lanes: Sequence[LaneResult]) -> list[tuple[str, str]]:
    """(lane, why) for lanes with quality and a decode figure that the speed-vs-quality plot
    does not draw: no KLD was measured for them (speculative, emulated, failed, ...)."""
    out = []
    for lane in lanes:
        q = lane.quality
        if q is None or lane.summary.get(Fig.DECODE) is None or (_measured_kld(q) and not lane.lane.emulated):
            continue
        out.append((lane.name, verdict(q) if q.speculative else f"{q.status}: no KLD measured"))
    return out
