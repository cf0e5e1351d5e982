"""A busy machine in a lane's figures: which repetitions the figures come from, the [busy]
marks in every table, the JSON and the store (schema 9), doctor's and run's warnings."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.schema_history import SCHEMA_10

from lanebench.busy.verdict import BUSY_CAPTION, needs_more
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.measure.job import summarize
from lanebench.records.baseline import BaselineRecord
from lanebench.records.busy import LoadRecord
from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord
from lanebench.report.compare import compare_rows, compare_table
from lanebench.report.sections import sweep_tables
from lanebench.report.tables import draft_acceptance, lane_notes, latest_numbers, to_markdown
from lanebench.report.views import time_table
from lanebench.store import open_store, schema
from lanebench.store.sink import StoreSink

JOB = JobSpec(n_in=100, n_out=20, reps=2, warmup=0, aggregate=2)


def load(cores: float, busy: bool) -> LoadRecord:
    return LoadRecord(
        seconds=1.0, cores=2, other_cores=cores, other_share=cores / 2, lane_cores=2 - cores,
        threshold_cores=0.25, busy=busy, why="CPU" if busy else "", top=[[4242, "burner", cores]],
    )  # fmt: skip


def request(rep: int, decode: float, other: float | None, kind: str = "single") -> RequestRecord:
    return RequestRecord(
        kind=kind,  # type: ignore[arg-type]
        rep=rep,
        n_in=JOB.n_in,
        n_out=JOB.n_out,
        ttft_s=0.2,
        wall_s=0.2 + JOB.n_out / decode,
        stream_tokens=JOB.n_out,
        decode_stream_s=(JOB.n_out - 1) / decode,
        timings={
            "prompt_n": JOB.n_in,
            "prompt_ms": 100.0,
            "prompt_per_second": 1000.0,
            "predicted_n": JOB.n_out,
            "predicted_ms": 1000 * JOB.n_out / decode,
            "predicted_per_second": decode,
        },
        load=None if other is None else load(other, other > 0.25),
    )  # fmt: skip


def lane_with(
    decodes: list[tuple[float, float | None]], batches: list[float | None], **spec: Any
) -> LaneResult:
    """A measured lane: singles (decode tok/s, others' cores) and batches (others' cores)."""
    lane = LaneResult(name=spec.pop("name", "plain"), lane=LaneSpec(name=spec.pop("lname", "plain"), **spec))
    lane.samples = [request(r, d, o) for r, (d, o) in enumerate(decodes)]
    lane.aggregates = [
        AggregateRecord(
            rep=r, streams=2, wall_s=1.0, tokens=40, load=None if o is None else load(o, o > 0.25)
        )
        for r, o in enumerate(batches)
    ]
    summarize(lane, JOB)
    return lane


def test_figures_come_from_the_quiet_repetitions_when_there_are_any() -> None:
    """Two repetitions collapsed beside a burner, two re-measured quietly: the figures are the
    quiet ones', the busy ones are kept as raw samples and counted, never averaged in."""
    lane = lane_with([(2.0, 1.6), (3.0, 1.5), (80.0, 0.02), (82.0, 0.05)], [1.5, 0.0, 0.0])
    decode = lane.summary[Fig.DECODE]
    assert (decode.median, decode.min, decode.n) == (81.0, 80.0, 2)
    assert lane.summary[Fig.AGGREGATE].n == 2  # the quiet batches
    busy = lane.busy
    assert busy is not None and busy.figures == {} and busy.excluded == 3
    assert (busy.busy_windows, busy.windows, busy.extra, busy.max_cores) == (3, 7, 3, 1.6)
    assert "[busy" not in to_markdown(latest_numbers([lane], JOB))
    assert "3 busy window(s) left out, quiet re-measurements used" in lane_notes(lane)


def test_figures_from_busy_repetitions_are_marked_in_the_table() -> None:
    lane = lane_with([(1.5, 1.5), (5.2, 1.7), (1.6, 1.6)], [1.8, 1.8])
    busy = lane.busy
    assert busy is not None
    assert busy.figures[str(Fig.DECODE)] == 1.6 and busy.figures[str(Fig.AGGREGATE)] == 1.8
    assert busy.top == [4242, "burner", 1.8]  # the heaviest window: a batch
    assert busy.why == "CPU" and busy.excluded == 0
    table = latest_numbers([lane], JOB)
    row = table.rows[0]
    assert row[3] == "1.6 tok/s (1.5–5.2) [busy: 1.6 cores]"
    assert row[4].endswith("[busy: 1.6 cores]") and row[5].endswith("[busy: 1.8 cores]")
    assert BUSY_CAPTION in table.caption
    assert "busy machine: 5 of 5 measured windows" in row[6] and "top: burner pid 4242" in row[6]


def test_unmeasured_or_quiet_lanes_carry_no_mark() -> None:
    attached = lane_with([(80.0, None), (81.0, None)], [None])  # an endpoint lanebench did not start
    quiet = lane_with([(80.0, 0.01), (81.0, 0.0)], [0.0])
    assert attached.busy is None
    assert quiet.busy is not None and quiet.busy.busy_windows == 0 and quiet.busy.figures == {}
    table = latest_numbers([attached, quiet], JOB)
    assert BUSY_CAPTION not in table.caption and not any("busy" in c for row in table.rows for c in row)


@pytest.mark.parametrize(
    ("busy", "reps", "budget", "more"),
    [
        ([True, False], 2, 2, True),  # one busy of two: one more
        ([True, False, False], 2, 2, False),  # two quiet now
        ([True, True, True, True], 2, 2, False),  # the budget is spent
        ([True, True], 2, 0, False),  # --remeasure-busy 0: mark, never re-measure
        ([False, False], 2, 2, False),
    ],
)
def test_re_measuring_is_bounded(busy: list[bool], reps: int, budget: int, more: bool) -> None:
    windows = [request(i, 50.0, 1.5 if b else 0.0) for i, b in enumerate(busy)]
    assert needs_more(windows, reps, budget) is more


def test_a_busy_kernel_view_is_marked_in_where_the_time_goes() -> None:
    lane = lane_with([(80.0, 0.0), (81.0, 0.0)], [0.0])
    busy = LoadRecord(cores=2, other_cores=1.2, busy=True, why="CPU")
    lane.baseline = BaselineRecord(prefill_tps=900.0, decode_tps=70.0, n_prompt=100, n_gen=20, load=busy)
    summarize(lane, JOB)
    assert lane.busy is not None and lane.busy.kernel == 1.2
    table = time_table([lane], JOB)
    assert table is not None
    assert all(row[2].endswith("[busy: 1.2 cores]") for row in table.rows)  # the kernel column
    assert not any("busy" in row[3] or "busy" in row[4] for row in table.rows)  # engine, client: quiet
    assert BUSY_CAPTION in table.caption and "the kernel view" in lane_notes(lane)


def test_sweep_drafting_and_compare_tables_mark_busy_figures() -> None:
    a = lane_with([(1.5, 1.5), (1.6, 1.6)], [1.8], name="f16", lname="f16", kv="f16")
    b = lane_with([(80.0, 0.0), (81.0, 0.0)], [0.0], name="q8", lname="q8", kv="q8_0")
    sweep = sweep_tables([a, b])[0]
    assert sweep.rows[0][1].endswith("[busy: 1.6 cores]") and "busy" not in sweep.rows[1][1]
    assert BUSY_CAPTION in sweep.caption
    drafting = lane_with([(1.5, 1.5), (1.6, 1.6)], [1.8], draft={"kind": "model", "path": "/d.gguf"})
    acc = draft_acceptance([drafting])
    assert acc is not None and acc.rows[0][-1].endswith("[busy: 1.6 cores]")
    rows = compare_rows([a], [lane_with([(80.0, 0.0), (81.0, 0.0)], [0.0], name="f16", lname="f16")])
    decode = next(r for r in rows if r.get("figure") == Fig.DECODE)
    assert decode["busy_a"] == 1.55 and decode["busy_b"] is None
    table = compare_table("A", "B", rows)
    row = next(r for r in table.rows if r[1] == "Decode")
    assert row[2].endswith("[busy: 1.6 cores]") and "busy machine" in row[5]


def test_loads_survive_json() -> None:
    lane = lane_with([(1.5, 1.5), (80.0, 0.0)], [1.8])
    back = LaneResult.from_dict(lane.to_dict())
    assert back.samples[0].load == lane.samples[0].load and back.samples[0].load is not None
    assert back.aggregates[0].load == lane.aggregates[0].load and back.busy == lane.busy
    doc = lane.to_dict()
    assert doc["samples"][0]["load"]["other_cores"] == 1.5 and doc["samples"][0]["load"]["busy"] is True
    assert doc["busy"]["busy_windows"] == 2


def _run() -> RunInfo:
    return RunInfo(run_id="r1", started_at="2026-12-04T00:00:00+00:00", lanebench_version="0", job=JOB)


def _store_lane(db: str) -> tuple[LaneResult, list[LaneResult]]:
    lane = lane_with([(1.5, 1.5), (1.6, 1.6)], [1.8])
    store = open_store(db)
    sink = StoreSink(store)
    sink.run_started(_run())
    sink.lane_started(_run(), lane)
    for rec in [*lane.samples, *lane.aggregates]:
        sink.sample(_run(), lane.name, rec)
    sink.lane_finished(_run(), lane)
    return lane, open_store(db).load_lanes("r1")


def test_the_store_keeps_each_windows_load_and_the_lanes_busy_figures(tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    lane, loaded = _store_lane(db)
    assert loaded[0].to_dict() == lane.to_dict()
    con = sqlite3.connect(db)
    assert con.execute("SELECT other_cores, busy FROM samples ORDER BY seq").fetchall() == [
        (1.5, 1),
        (1.6, 1),
    ]
    assert con.execute("SELECT other_cores, busy FROM aggregates").fetchall() == [(1.8, 1)]
    assert '"decode_tps": 1.55' in con.execute("SELECT busy FROM lanes").fetchone()[0]


def test_a_schema_8_database_gains_the_load_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    open_store(str(db)).close()
    con = sqlite3.connect(db)  # what lanebench wrote before a busy machine was noticed
    for table in ("samples", "aggregates"):
        for column in ("other_cores", "busy", "load"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("ALTER TABLE lanes DROP COLUMN busy")
    for table, column in SCHEMA_10:  # schema 10's
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '8' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    lane, loaded = _store_lane(str(db))
    assert loaded[0].busy == lane.busy and loaded[0].samples[1].load == lane.samples[1].load
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta").fetchone() == (str(schema.latest_version()),)
    assert {"other_cores", "busy", "load"} <= {r[1] for r in con.execute("PRAGMA table_info(aggregates)")}


def test_doctor_warns_of_a_busy_machine_without_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    from lanebench.orchestration import doctor

    monkeypatch.setattr(doctor, "machine_load", lambda seconds, threads: load(1.9, True))
    item, record = doctor.load_item()
    assert item is not None and record is not None and record["other_cores"] == 1.9
    assert item["ok"] and item["warn"] and "1.90 of 2 cores (95%) used by other processes" in item["detail"]
    assert "top: burner pid 4242" in item["detail"] and "re-measures" in item["fix"]
    monkeypatch.setattr(doctor, "machine_load", lambda seconds, threads: load(0.02, False))
    item, _ = doctor.load_item()
    assert item is not None and item["ok"] and not item["warn"] and item["detail"].startswith("quiet")


def test_a_busy_kernel_view_is_run_once_more_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from lanebench.busy.meter import LoadMeter
    from lanebench.engines.llamacpp import kernel
    from lanebench.records.baseline import BaselineRecord

    runs: list[list[str]] = []

    def fake_run(
        argv: list[str], decode_argv: list[str], notes: list[str], env: dict[str, str]
    ) -> BaselineRecord:
        runs.append(argv)
        return BaselineRecord(argv)

    monkeypatch.setattr(kernel, "run_baseline", fake_run)
    loads = iter([load(1.7, True), load(0.01, False)])
    monkeypatch.setattr(LoadMeter, "stop", lambda self, start: next(loads))
    rec = kernel.metered_baseline(["llama-bench"], ["llama-bench"], {}, [], 2, retry=True)
    assert len(runs) == 2 and rec.load is not None and rec.load.busy is False
    assert "re-measured (quiet): the first run was busy, 1.70 of 2 cores" in rec.note
    loads = iter([load(1.7, True)])
    rec = kernel.metered_baseline(
        ["llama-bench"], ["llama-bench"], {}, [], 2, retry=False
    )  # --remeasure-busy 0
    assert len(runs) == 3 and rec.load is not None and rec.load.busy is True and rec.note == ""


def test_run_warns_in_one_line_when_the_machine_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    from lanebench.busy import meter

    seen: list[int] = []

    def fake_load(seconds: float, threads: int) -> LoadRecord:
        seen.append(threads)
        return load(1.9, True)

    monkeypatch.setattr(meter, "machine_load", fake_load)
    line = meter.busy_warning(2, JOB.remeasure_budget)
    assert line is not None and "\n" not in line and seen == [2]
    assert line.startswith("warning: the machine is busy: 1.90 of 2 cores (95%) used by other processes")
    assert "at most 2 extra per lane" in line
    monkeypatch.setattr(meter, "machine_load", lambda seconds, threads: load(0.0, False))
    assert meter.busy_warning(2, JOB.remeasure_budget) is None


def test_the_report_csv_context_table_and_tune_name_busy_figures(tmp_path: Path) -> None:
    import csv
    import io

    from lanebench.orchestration.tune import TuneReport, _log_round
    from lanebench.report.data import load_report
    from lanebench.report.render import render
    from lanebench.report.sections import context_table

    db = str(tmp_path / "r.sqlite")
    _store_lane(db)
    store = open_store(db)
    data = load_report(store, ["r1"])
    row = next(csv.DictReader(io.StringIO(render(data, "csv"))))
    assert (row["busy_windows"], row["windows"], row["busy_max_cores"]) == ("3", "3", "1.8")
    assert "decode_tps=1.55" in row["busy_figures"] and "aggregate_tps=1.8" in row["busy_figures"]
    assert "[busy: 1.6 cores]" in render(data, "md")  # Latest Measured Numbers, from the store
    data.history.append(replace(data.history[0], run_id="r0", busy=None))  # an earlier, quiet row
    context = context_table(data)
    assert context is not None and BUSY_CAPTION in context.caption
    marked = [r for r in context.rows if r[5].endswith("[busy: 1.6 cores]")]
    assert [r[2] for r in marked] == ["r1 ★"]
    report = TuneReport(goal="decode")
    lane = store.load_lanes("r1")[0]
    _log_round(report, 1, JOB, [(lane, lane.summary[Fig.DECODE].median)], 1)
    assert report.log[-1].endswith("[busy: 1.6 cores]") and report.rounds[0]["ranked"][0]["busy"] == 1.55


def test_a_hand_edited_document_with_odd_loads_still_renders() -> None:
    doc = lane_with([(1.5, 1.5), (1.6, 1.6)], [1.8]).to_dict()
    doc["samples"][0]["load"] = {"other_cores": "lots", "busy": "yes", "top": 7}
    doc["aggregates"][0]["load"] = ["not", "a", "record"]
    doc["busy"] = {
        "figures": {"decode_tps": "x", "prefill_tps": 1.5},
        "top": [1],
        "busy_windows": 2,
        "windows": 3,
    }
    lane = LaneResult.from_dict(doc)
    assert lane.samples[0].load is not None and lane.samples[0].load.busy is False
    assert (
        lane.aggregates[0].load is None
        and lane.busy is not None
        and lane.busy.figures == {"prefill_tps": 1.5}
    )
    row = latest_numbers([lane], JOB).rows[0]
    assert row[2].endswith("[busy: 1.5 cores]") and "busy" not in row[3] and "busy machine: 2 of 3" in row[6]
