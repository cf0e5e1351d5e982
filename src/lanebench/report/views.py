"""The "Where the time goes" table: each lane's prefill and decode through the kernel (llama-bench),
engine (``timings``) and client views, with the loss at each step and its causes."""

from __future__ import annotations

from collections.abc import Sequence

from lanebench.engines.llamabench import BaselineRecord
from lanebench.fmt import Table
from lanebench.records import JobSpec, LaneResult
from lanebench.report.tables import lane_cell
from lanebench.views import where_time_goes


def _rate(v: float | None) -> str:
    return f"{v:,.1f} tok/s" if v else "–"


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
        for step in where_time_goes(lane, job, base, lane.log_tail):
            table.rows.append(
                [
                    lane_cell(lane),
                    step.figure,
                    _rate(step.kernel_tps),
                    _rate(step.engine_tps),
                    _rate(step.client_tps),
                    _loss(step.kernel_to_engine),
                    _loss(step.engine_to_client),
                    "; ".join(step.causes) or "–",
                ]
            )
    return table
