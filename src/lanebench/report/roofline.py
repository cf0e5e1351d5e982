"""The report's Decode Roofline table: each lane's bytes per token, its ceiling at the host's
bandwidth and the share of it the lane reached (``analysis.ceilings`` computes the rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanebench.analysis.ceilings import lane_ceilings
from lanebench.busy.verdict import busy_caption, busy_mark
from lanebench.config.job import JobSpec
from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult
from lanebench.report.fmt import Table


def ceilings_table(job: JobSpec, lanes: Sequence[LaneResult], bandwidth: dict[str, Any]) -> Table:
    """The report's Decode Roofline table: bytes per token, ceiling, decode, % of ceiling."""
    from lanebench.analysis.specmodel import advise

    gbps = bandwidth["bytes_per_s"] / 1e9
    table = Table(
        title=f"Decode Roofline at {gbps:,.0f} GB/s",
        headers=["Lane", "MB read per token", "Ceiling", "Decode", "% of ceiling"],
        caption=f"bandwidth: {bandwidth.get('source', 'given')}; KV read at the job's mean context",
    )
    shown = {lane.name: lane.lane.marked_name for lane in lanes}  # "[emulated]" after the name
    table_rows = lane_ceilings(job, lanes, advise(lanes), bandwidth["bytes_per_s"])
    for row in table_rows:
        name = shown.get(row["lane"], str(row["lane"]))
        if "error" in row:
            table.rows.append([name, "–", "–", "–", row["error"]])
            continue
        dec, pct = row["decode_tps"], row["pct"]
        table.rows.append(
            [
                name,
                f"{row['bytes_per_token'] / 1e6:,.1f}",
                f"{row['ceiling_tps']:,.1f} tok/s",
                f"{dec:,.1f} tok/s{busy_mark(row['busy'], Fig.DECODE)}" if dec else "–",
                f"{pct:.1f}%{busy_mark(row['busy'], Fig.DECODE)}" if pct is not None else "–",
            ]
        )
    table.caption += busy_caption(any(r.get("busy") for r in table_rows))
    return table
