"""Two runs side by side: per lane, the ratio B/A of each figure with its range, and whether the
difference is measurable by ``lanebench.analysis.noise``'s rule (the min–max ranges do not overlap, with
enough repetitions that such a separation is unlikely by chance) or "no measurable difference".
Every row of a lane with emulated acceptance (in either run) is marked ``[emulated]``.

Besides the job's figures: the kernel view (llama-bench's prefill and decode, when both runs
ran ``--baseline``), peak RSS and peak VRAM, and each device's peak VRAM where both runs have
per-device figures.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from lanebench.analysis.noise import judge_stats
from lanebench.busy.verdict import busy_caption, busy_mark
from lanebench.config.lanes import EMULATED_MARK
from lanebench.records.baseline import BaselineRecord
from lanebench.records.figures import FIGURES, KERNEL, Fig, Figure
from lanebench.records.lane import LaneResult
from lanebench.records.memory import MemoryRecord
from lanebench.records.samples import Stat
from lanebench.report.fmt import Table
from lanebench.report.tables import fmt_pct, fmt_stat

# the job's figures compared, from the one table of figures (each lane's summary holds them)
_KEYS = (Fig.PREFILL, Fig.DECODE, Fig.NORMALIZED_WALL, Fig.AGGREGATE, Fig.WALL, Fig.ACCEPTANCE)
COMPARED = tuple(FIGURES[k] for k in _KEYS)
_PEAKS = (FIGURES[Fig.PEAK_RSS], FIGURES[Fig.PEAK_VRAM])  # memory: one figure per run, no spread


def verdict(a: Stat | None, b: Stat | None, better: int) -> str:
    """``B better (…test…)``, ``B worse (…)``, ``no measurable difference (…)`` or ``no spread
    to judge (1 sample each)`` by ``noise.judge_stats``; ``–`` when a run lacks the figure."""
    if a is None or b is None:
        return "–"
    v = judge_stats(a, b, better > 0)
    return f"{v.outcome} ({v.test})"


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
        rows = []
        for fig in COMPARED:
            sa, sb = la.summary.get(fig.key), lb.summary.get(fig.key)
            if sa is not None or sb is not None:
                rows.append(_row(la, lb, fig, sa, sb))
        rows += _kernel_rows(la, lb) + _memory_rows(la, lb) + _rpc_rows(la, lb)
        # the build's --spec-synth-*: speeds at a chosen acceptance, never read as a measured change
        emulated = la.lane.emulated or lb.lane.emulated
        out += [{**r, "emulated": emulated} for r in rows]
    names_a = {lane.name for lane in a}
    out += [{"lane": lane.name, "only_in": "B"} for lane in b if lane.name not in names_a]
    return out


def _row(
    la: LaneResult, lb: LaneResult, fig: Figure, sa: Stat | None, sb: Stat | None, part: str = ""
) -> dict[str, Any]:
    """One figure of a lane in both runs; ``part``: which of several of the lane's (a device, an
    RPC endpoint), added to its key (``figure:part``) and label."""
    figure = f"{fig.key}:{part}" if part else str(fig.key)
    v = judge_stats(sa, sb, fig.higher_is_better)
    return {
        "lane": la.name,
        "figure": figure,
        "label": f"{fig.label} {part}" if part else fig.label,
        "unit": fig.unit,
        "a": sa.to_dict() if sa else None,
        "b": sb.to_dict() if sb else None,
        "ratio": ratio(sa, sb),
        "ratio_range": [v.ratio_low, v.ratio_high] if v.ratio_low is not None else None,
        "verdict": verdict(sa, sb, fig.better),
        "test": v.test if v.judged else None,
        "status": f"{la.status} → {lb.status}",
        # cores others used when the figure had to come from a busy machine's repetitions
        "busy_a": la.busy.figures.get(figure) if la.busy else None,
        "busy_b": lb.busy.figures.get(figure) if lb.busy else None,
    }


def _one(v: float | None) -> Stat | None:
    """A figure measured once per run (a peak): no spread."""
    return Stat(v, v, v, 1) if v is not None else None


def _peaks(m: MemoryRecord | None) -> dict[str, float]:
    """Device name -> its GPU's peak for the lane (MiB), where known."""
    devices = m.devices if m else []
    return {d.device: d.peak_vram for d in devices if d.peak_vram is not None}


def _memory_rows(la: LaneResult, lb: LaneResult) -> list[dict[str, Any]]:
    """Peak RSS and peak VRAM (one figure per run: no spread), then each device's peak VRAM
    where both runs have per-device figures."""
    out = []
    for fig in _PEAKS:
        ma = getattr(la.memory, fig.field) if la.memory else None
        mb = getattr(lb.memory, fig.field) if lb.memory else None
        if ma is not None or mb is not None:
            out.append(_row(la, lb, fig, _one(ma), _one(mb)))
    pa, pb = _peaks(la.memory), _peaks(lb.memory)
    vram = FIGURES[Fig.PEAK_VRAM]
    out += [_row(la, lb, vram, _one(pa[dev]), _one(pb[dev]), dev) for dev in pa if dev in pb]
    return out


def kernel_stat(base: BaselineRecord | None, phase: str) -> Stat | None:
    """llama-bench's ``phase`` (prefill/decode) tok/s as a Stat: median/min/max of the reps'
    rates when the record keeps them (``<phase>_samples``, llama-bench's ``samples_ts``), else
    mean ± one standard deviation as the range over ``reps`` (what older records keep)."""
    if base is None:
        return None
    samples: list[float] = getattr(base, f"{phase}_samples")
    if samples:
        return Stat(median(samples), min(samples), max(samples), len(samples))
    mean = getattr(base, f"{phase}_tps")
    if mean is None:
        return None
    sd = getattr(base, f"{phase}_sd") or 0.0
    return Stat(mean, mean - sd, mean + sd, base.reps or 1)


def _kernel_rows(la: LaneResult, lb: LaneResult) -> list[dict[str, Any]]:
    """The kernel view (llama-bench, no server): prefill and decode rates, higher is better."""
    out = []
    for fig in (FIGURES[k] for k in KERNEL):
        sa, sb = kernel_stat(la.baseline, fig.field), kernel_stat(lb.baseline, fig.field)
        if sa is not None or sb is not None:
            out.append(_row(la, lb, fig, sa, sb))
    return out


def _rtts(lane: LaneResult) -> dict[str, Stat]:
    """Each RPC endpoint's round trips before the lane started, keyed so two runs line up: a
    remote endpoint by its address, a local one (a new port each run) as ``rpc_local[i]``."""
    out: dict[str, Stat] = {}
    local = 0
    for p in lane.placement.rpc if lane.placement else []:
        rtt = p.rtt_ms
        if p.local:
            key, local = f"rpc_local[{local}]", local + 1
        else:
            key = p.endpoint
        if rtt:
            out[key] = Stat(median(rtt), min(rtt), max(rtt), len(rtt))
    return out


def _rpc_rows(la: LaneResult, lb: LaneResult) -> list[dict[str, Any]]:
    """RPC round-trip time per endpoint both runs used (lower is better)."""
    ra, rb, fig = _rtts(la), _rtts(lb), FIGURES[Fig.RPC_RTT]
    return [_row(la, lb, fig, ra[k], rb[k], k) for k in ra if k in rb]


def _fmt(d: dict[str, Any] | None, unit: str) -> str:
    if d is None:
        return "–"
    s = Stat(**d)
    if unit == "":
        return fmt_pct(s)
    return fmt_stat(s, unit, digits=3 if unit == "ms" else 1)  # RPC round trips are sub-millisecond


def compare_table(run_a: str, run_b: str, rows: list[dict[str, Any]]) -> Table:
    """The comparison as a table (markdown or terminal)."""
    table = Table(
        title=f"Compare A = {run_a} with B = {run_b}",
        headers=["Lane", "Figure", "A", "B", "B/A", "Verdict"],
        caption="medians (min–max); B/A with its range over every pair of samples; B better/worse "
        "only when the two runs' min–max ranges do not overlap and the reps make that unlikely by "
        "chance (2 / C(n_a + n_b, n_a) <= 0.10; 3 vs 3 reps give 0.10), else no measurable difference",
    )
    if any(r.get("emulated") for r in rows):
        table.caption += (
            f"; {EMULATED_MARK}: emulated acceptance (the build's --spec-synth-*), output not the model's"
        )
    for r in rows:
        if "only_in" in r:
            table.rows.append([r["lane"], "–", "–", "–", "–", f"only in run {r['only_in']}"])
            continue
        ratio_text = f"{r['ratio']:.3f}" if r["ratio"] is not None else "–"
        if r["ratio"] is not None and r.get("ratio_range") and r["ratio_range"][1] > r["ratio_range"][0]:
            ratio_text += f" ({r['ratio_range'][0]:.3f}–{r['ratio_range'][1]:.3f})"
        busy = {"a": r.get("busy_a"), "b": r.get("busy_b")}
        marked = {k: v for k, v in busy.items() if v is not None}
        table.rows.append(
            [
                f"{r['lane']} {EMULATED_MARK}" if r.get("emulated") else r["lane"],
                r["label"],
                _fmt(r["a"], r["unit"]) + (busy_mark(marked, "a") if r["a"] else ""),
                _fmt(r["b"], r["unit"]) + (busy_mark(marked, "b") if r["b"] else ""),
                ratio_text,
                r["verdict"] + (" (a busy machine's figure: not the lane's)" if marked else ""),
            ]
        )
    table.caption += busy_caption(any(r.get("busy_a") or r.get("busy_b") for r in rows))
    return table
