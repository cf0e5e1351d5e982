"""Where each lane wins across runs: two runs of one lane each (as the device measures one lane per
call) share a winner map when job and host match, a lane name two runs share gets its run id,
and runs that differ in job or host get a line naming the difference instead of a winner."""

from __future__ import annotations

from dataclasses import replace

from tests.envelope_cells import FAST, JOB, SLOW, lane

from lanebench.config.job import JobSpec
from lanebench.records.lane import LaneResult, RunStatus
from lanebench.records.run import RunInfo
from lanebench.report.data import ReportData, RunData
from lanebench.report.envelope_across import across_runs_tables
from lanebench.report.fmt import Table
from lanebench.report.render import render

HOST: dict[str, object] = {
    "hostname": "box",
    "cpu": "Xeon",
    "gpus": {"nvidia": [{"name": "H200", "memory": "143771 MiB"}]},
}


def run(run_id: str, *lanes: LaneResult, job: JobSpec = JOB, host: dict[str, object] = HOST) -> RunData:
    info = RunInfo(run_id=run_id, started_at="2026-12-04T16:00:00+00:00", lanebench_version="0", job=job,
                   host=dict(host), status=RunStatus.DONE)  # fmt: skip
    return RunData(run=info, lanes=list(lanes))


def across(*runs: RunData) -> list[Table]:
    return across_runs_tables(ReportData(runs=list(runs)))


def test_lanes_of_two_runs_share_one_winner_map() -> None:
    tables = across_runs_tables(
        ReportData(runs=[run("r1", lane("plain", SLOW)), run("r2", lane("mtp", FAST))])
    )
    assert [t.title for t in tables] == [
        "Where Each Lane Wins, across runs (r1, r2)",
        "Crossovers, across runs (r1, r2)",
    ]
    first = tables[0].rows[0]
    assert first[:3] == ["0", "1", "mtp 1.37× (1.32–1.43) over plain"]
    assert "measured at different times" in tables[0].caption


def test_a_name_both_runs_hold_gets_its_run_id() -> None:
    tables = across_runs_tables(
        ReportData(runs=[run("r1", lane("plain", SLOW)), run("r2", lane("plain", FAST))])
    )
    assert tables[0].rows[0][2] == "plain (r2) 1.37× (1.32–1.43) over plain (r1)"


def test_runs_of_different_jobs_are_not_compared_and_say_why() -> None:
    other = replace(JOB, n_out=64)
    tables = across_runs_tables(
        ReportData(runs=[run("r1", lane("plain", SLOW)), run("r2", lane("mtp", FAST), job=other)])
    )
    assert len(tables) == 1
    why = "the runs differ in job n_out: 32 in r1, 64 in r2: lanes of different jobs or hosts share no map"
    assert tables[0].rows == [[why]]


def test_runs_on_different_hosts_are_not_compared() -> None:
    elsewhere = {**HOST, "gpus": {"nvidia": [{"name": "H100", "memory": "81559 MiB"}]}}
    tables = across_runs_tables(
        ReportData(runs=[run("r1", lane("plain", SLOW)), run("r2", lane("mtp", FAST), host=elsewhere)])
    )
    assert (
        "host GPUs: H200 (143771 MiB, driver ) in r1, H100 (81559 MiB, driver ) in r2" in tables[0].rows[0][0]
    )


def test_one_run_or_one_run_with_an_envelope_adds_nothing() -> None:
    assert across(run("r1", lane("plain", SLOW), lane("mtp", FAST))) == []
    plain = LaneResult(name="std", lane=lane("std", SLOW).lane)
    assert across(run("r1", lane("plain", SLOW)), run("r2", plain)) == []


def test_the_markdown_report_of_two_runs_carries_the_map_after_the_runs() -> None:
    md = render(ReportData(runs=[run("r1", lane("plain", SLOW)), run("r2", lane("mtp", FAST))]), "md")
    assert md.index("### Envelope: mtp (r2)") < md.index("### Where Each Lane Wins, across runs (r1, r2)")
    assert "| mtp 1.37× (1.32–1.43) over plain |" in md
