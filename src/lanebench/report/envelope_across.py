"""Where each lane wins across runs: lanes that mapped the same envelope on the same host in
separate runs (one device call each, say) on one winner map.

A run's own "Where Each Lane Wins" compares its lanes only. A report of several runs adds this
map when every run with an envelope has the same job (tokens in and out, depths, streams) and the
same host facts; otherwise one line says which field differs and no lane is named. Lanes measured
in different runs were measured at different times: whatever changed between the runs (drift,
other load) counts in their margins, and the caption says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from lanebench.records.lane import LaneResult
from lanebench.report.data import ReportData, RunData
from lanebench.report.envelope import crossover_table, envelope_lanes, winner_table
from lanebench.report.fmt import Table
from lanebench.report.sections import host_facts

HOST_FACTS = ("Host", "System", "Cores / threads", "Memory", "OS", "Kernel", "GPUs")
ACROSS_CAPTION = (
    "lanes of separate runs on one map: same host and job, but measured at different times, so "
    "whatever changed between the runs (drift, other load) counts in the margins"
)


def _job_key(rd: RunData) -> dict[str, object]:
    job = rd.run.job
    return {
        "n_in": job.n_in,
        "n_out": job.n_out,
        "depths": job.depth_levels,
        "streams": job.concurrency_levels,
    }


def mismatch(runs: Sequence[RunData]) -> str | None:
    """Why these runs' envelopes cannot share one map (the first field that differs), or None."""
    first = runs[0]
    job0, host0 = _job_key(first), host_facts(first)
    for rd in runs[1:]:
        job, host = _job_key(rd), host_facts(rd)
        for key in job0:
            if job[key] != job0[key]:
                return f"job {key}: {job0[key]} in {first.run.run_id}, {job[key]} in {rd.run.run_id}"
        for key in HOST_FACTS:
            if host.get(key) != host0.get(key):
                return (
                    f"host {key}: {host0.get(key)} in {first.run.run_id}, {host.get(key)} in {rd.run.run_id}"
                )
    return None


def _named(runs: Sequence[RunData]) -> list[LaneResult]:
    """Every run's envelope lanes; a name that two runs share gets its run id after it."""
    lanes = [(rd.run.run_id, lane) for rd in runs for lane in envelope_lanes(rd.lanes)]
    names = [lane.name for _, lane in lanes]
    return [
        replace(lane, name=f"{lane.name} ({rid})") if names.count(lane.name) > 1 else lane
        for rid, lane in lanes
    ]


def across_runs_tables(data: ReportData) -> list[Table]:
    """The winner map and crossovers of every run's envelope lanes together; a one-line table
    saying why not when the runs' jobs or hosts differ; [] with fewer than two such runs."""
    runs = [rd for rd in data.runs if envelope_lanes(rd.lanes)]
    if len(runs) < 2:
        return []
    ids = ", ".join(rd.run.run_id for rd in runs)
    reason = mismatch(runs)
    if reason is not None:
        return [
            Table(
                title=f"Where Each Lane Wins, across runs ({ids})",
                headers=["Not compared"],
                rows=[[f"the runs differ in {reason}: lanes of different jobs or hosts share no map"]],
            )
        ]
    lanes = _named(runs)
    tables = [t for t in (winner_table(lanes), crossover_table(lanes)) if t is not None]
    for t in tables:
        t.title = f"{t.title}, across runs ({ids})"
        t.caption = f"{t.caption}; {ACROSS_CAPTION}" if t.caption else ACROSS_CAPTION
    return tables
