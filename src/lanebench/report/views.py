"""The "Where the time goes" table: each lane's prefill and decode through the kernel (llama-bench),
engine (``timings``) and client views, with the loss at each step and its causes."""

from __future__ import annotations

from collections.abc import Sequence

from lanebench.busy.verdict import any_busy, busy_caption, busy_mark
from lanebench.engines.llamabench import BaselineRecord
from lanebench.figures import Fig
from lanebench.fmt import Table
from lanebench.records import JobSpec, LaneResult
from lanebench.views import where_time_goes


def _rate(v: float | None) -> str:
    return f"{v:,.1f} tok/s" if v else "–"


# per step: the busy-figure keys of its kernel, engine and client columns
_KEYS = {
    "prefill": ("kernel_prefill_tps", Fig.PREFILL, Fig.PREFILL_CLIENT),
    "decode": ("kernel_decode_tps", Fig.DECODE, Fig.DECODE_CLIENT),
}


def _loss(pair: tuple[float | None, float | None]) -> str:
    pct, ms = pair
    return "–" if pct is None or ms is None else f"{pct:.1f}% ({ms:,.0f} ms)"


def time_table(lanes: Sequence[LaneResult], job: JobSpec) -> Table | None:
    """None when no lane has a kernel view (no ``--baseline``)."""
    with_base = [lane for lane in lanes if lane.baseline]
    if not with_base:
        return None
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
        caption=f"kernel = llama-bench -p {job.n_in} -n {job.n_out} with the lane's settings; engine = the "
        "server's timings; client = time to first token / stream rate; loss in % and ms per request",
    )
    for lane in with_base:
        base = BaselineRecord.from_dict(lane.baseline or {})
        busy = lane.busy.figures if lane.busy else None
        for step in where_time_goes(lane, job, base, lane.log_tail):
            kernel, engine, client = _KEYS.get(step.figure, ("", "", ""))
            table.rows.append(
                [
                    lane.name,
                    step.figure,
                    _rate(step.kernel_tps) + (busy_mark(busy, kernel) if step.kernel_tps else ""),
                    _rate(step.engine_tps) + (busy_mark(busy, engine) if step.engine_tps else ""),
                    _rate(step.client_tps) + (busy_mark(busy, client) if step.client_tps else ""),
                    _loss(step.kernel_to_engine),
                    _loss(step.engine_to_client),
                    "; ".join(step.causes) or "–",
                ]
            )
    table.caption += busy_caption(any_busy(with_base))
    return table
