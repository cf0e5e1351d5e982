"""The "Where the time goes" table: each lane's prefill and decode through the kernel (llama-bench),
engine (``timings``) and client views, with the loss at each step and its causes; and the
"Attribution" table: what switching each suspect off did (``run --attribute``)."""

from __future__ import annotations

from collections.abc import Sequence

from lanebench.analysis.attribution import FIGURES, MIN_N, AttrFigure, drift, effect, figure_stat, same_tokens
from lanebench.analysis.views import where_time_goes
from lanebench.busy.verdict import any_busy, busy_caption, busy_mark
from lanebench.config.job import JobSpec
from lanebench.records.attribution import Arm, AttributionRecord
from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult
from lanebench.records.samples import Stat
from lanebench.report.fmt import Table
from lanebench.report.tables import lane_cell


def _rate(v: float | None) -> str:
    return f"{v:,.1f} tok/s" if v else "–"


# per step: the busy-figure keys of its kernel, engine and client columns
_KEYS = {
    "prefill": (Fig.KERNEL_PREFILL, Fig.PREFILL, Fig.PREFILL_CLIENT),
    "decode": (Fig.KERNEL_DECODE, Fig.DECODE, Fig.DECODE_CLIENT),
}


def _loss(pair: tuple[float | None, float | None]) -> str:
    pct, ms = pair
    return "–" if pct is None or ms is None else f"{pct:.1f}% ({ms:,.0f} ms)"


def kernel_tests(lanes: Sequence[LaneResult]) -> str:
    """What llama-bench ran for these lanes, in its own notation (``pp1150 @ d0``, ``tg200 @
    d1150``); lanes that ran different tests are named."""
    seen: dict[str, list[str]] = {}
    for lane in lanes:
        if (base := lane.baseline) is not None and base.measured:
            seen.setdefault(f"{base.prefill_test} and {base.decode_test}", []).append(lane.name)
    if len(seen) <= 1:
        return next(iter(seen), "no llama-bench figures")
    return "; ".join(f"{tests} ({', '.join(names)})" for tests, names in seen.items())


def time_table(lanes: Sequence[LaneResult], job: JobSpec) -> Table | None:
    """None when no lane has a kernel view (``--baseline``) or an experiment (``--attribute``)."""
    shown = [lane for lane in lanes if lane.baseline or lane.attribution]
    if not shown:
        return None
    experiment = any(lane.attribution for lane in shown)
    table = Table(
        title="Where the Time Goes",
        headers=[
            "Lane",
            "Figure",
            "Kernel",
            "Engine",
            "Client",
            "Kernel → engine",
            "Engine → client",
            "Causes",
        ],
        caption=f"kernel = llama-bench {kernel_tests(shown)} with the lane's settings (prefill after the "
        "context the job's prompt follows, decode after that and the prompt, as the server runs them); "
        "engine = the server's timings; client = time to first token / stream rate; loss in % and ms "
        "per request. A cause is named only when switching it off moved that figure beyond the noise "
        + ("(see Attribution)" if experiment else "(run --attribute to test the known suspects)")
        + "; the rest is unattributed",
    )
    for lane in shown:
        busy = lane.busy.figures if lane.busy else None
        for step in where_time_goes(lane, job, lane.baseline, lane.log_tail, lane.attribution):
            kernel, engine, client = _KEYS.get(step.figure, ("", "", ""))
            table.rows.append(
                [
                    lane_cell(lane),
                    step.figure,
                    _rate(step.kernel_tps) + (busy_mark(busy, kernel) if step.kernel_tps else ""),
                    _rate(step.engine_tps) + (busy_mark(busy, engine) if step.engine_tps else ""),
                    _rate(step.client_tps) + (busy_mark(busy, client) if step.client_tps else ""),
                    _loss(step.kernel_to_engine),
                    _loss(step.engine_to_client),
                    "; ".join(step.causes) or "–",
                ]
            )
    table.caption += busy_caption(any_busy(shown))
    return table


def _range(s: Stat | None, unit: str) -> str:
    if s is None:
        return "–"
    fmt = "{:,.1f}"
    return f"{fmt.format(s.median)} {unit} ({fmt.format(s.min)}–{fmt.format(s.max)}, n={s.n})"


def _cell(rec: AttributionRecord, arm: Arm, fig: AttrFigure) -> str:
    e = effect(rec, arm, fig)
    if e.variant is None or e.change_pct is None or e.saved_ms is None:
        return "–"
    mark = {True: " ✔", False: "", None: " (n<3)"}[e.moved]
    return f"{e.change_pct:+.1f}% ({-e.saved_ms:+,.0f} ms){mark}"


def attribution_table(lanes: Sequence[LaneResult]) -> Table | None:
    """Per lane: the control's medians (ranges), then one row per suspect switched off: each
    figure's change in % and in ms per request, ✔ where the ranges do not overlap."""
    with_exp = [(lane, rec) for lane in lanes if (rec := lane.attribution) is not None]
    if not with_exp:
        return None
    table = Table(
        title="Attribution",
        headers=["Lane", "Switched off", *(f"{f.label} ({f.unit})" for f in FIGURES), "Same tokens"],
        caption="fresh servers running a few requests of the job: the lane as it runs (control, before and "
        "after the others, pooled) and with one suspect switched off; a change is the median's, in % of "
        "the control and in ms per request (− = faster). ✔: the ranges (min–max) of control and variant "
        f"do not overlap, with at least {MIN_N} requests each: only then is a cause named. Same tokens: the "
        "variant generated the control's token ids for every prompt (greedy)",
    )
    blank = [""] * (len(FIGURES) + 1)
    for lane, rec in with_exp:
        cells = [_range(figure_stat(f, rec.control()), f.unit) for f in FIGURES]
        table.rows.append([lane.name, "— (control, as the lane runs)", *cells, ""])
        for arm in rec.variants():
            what = f"{arm.label} ({' '.join(arm.change)})"
            if arm.error:
                table.rows.append([lane.name, f"{what}: failed: {arm.error}"[:300], *blank])
                continue
            same = {True: "yes", False: "no", None: "–"}[same_tokens(rec, arm)]
            table.rows.append([lane.name, what, *(_cell(rec, arm, f) for f in FIGURES), same])
        table.rows += [[lane.name, f"{name}: not tested ({why})", *blank] for name, why in rec.skipped]
        if moved := drift(rec):
            shown = ", ".join(f.label for f in FIGURES if f.key in moved)
            table.rows.append(
                [lane.name, f"drift: the control moved between its two runs ({shown}); pooled", *blank]
            )
        if rec.note:
            table.rows.append([lane.name, rec.note, *blank])
    return table
