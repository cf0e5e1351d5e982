"""The envelope's tables from constructed cells: a lane's table (its figures, marks and notes), the
N-slot aggregate in a table of its own, the winner map (a clearly faster lane named with its
margin; lanes within noise named as such), the crossovers in words, and the CSV, JSON and
markdown reports that carry them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from tests.envelope_cells import FAST, JOB, KEYS, MODEL, SLOW, lane

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult, RunStatus
from lanebench.records.run import RunInfo
from lanebench.records.samples import Stat
from lanebench.report.data import ReportData, RunData
from lanebench.report.envelope import (
    CSV_COLUMNS,
    cell_csv,
    crossover_table,
    envelope_doc,
    envelope_tables,
    lane_envelope_table,
    nslot_table,
    winner_table,
)
from lanebench.report.fmt import Table
from lanebench.report.render import lane_tables, render


def rows_by_cell(table: Table) -> dict[tuple[int, int], list[str]]:
    return {(int(r[0].replace(",", "")), int(r[1])): r for r in table.rows}


def column(table: Table, header: str) -> int:
    return next(i for i, h in enumerate(table.headers) if h.startswith(header))


def test_a_lanes_table_has_a_row_per_cell_with_median_and_spread() -> None:
    t = lane_envelope_table(lane("plain", SLOW), JOB)
    assert t.title == "Envelope: plain"
    assert list(rows_by_cell(t)) == KEYS
    row = rows_by_cell(t)[(4096, 2)]
    assert row[column(t, "Decode per stream")] == "85.0 tok/s (83.3–86.7)"
    assert row[column(t, "Aggregate decode, steady state")] == "170.0 tok/s (166.6–173.4)"
    assert row[column(t, "TTFT p50 / p95")] == "0.200 / 0.204 s"
    assert row[column(t, "Requests/min")] == "60.0"
    assert row[column(t, "KV in use")] == "6.5 MiB"
    assert row[column(t, "Prefill, 64 new tokens")].startswith("900.0 tok/s")
    assert "Acceptance" not in t.headers and "Kernel pp / tg" not in t.headers


def test_the_nslot_aggregate_is_never_beside_decode() -> None:
    lanes = [lane("plain", SLOW)]
    own = lane_envelope_table(lanes[0], JOB)
    assert not any("prefill included" in h.lower() or "slot" in h.lower() for h in own.headers)
    assert "102.0 tok/s" not in " ".join(c for r in own.rows for c in r)  # the N-slot figure at (4096, 2)
    t = nslot_table(lanes)
    assert t is not None and "Prefill Included" in t.title and "Not a decode rate" in t.caption
    assert rows_by_cell(t)[(4096, 2)][2] == "102.0 tok/s (100.0–104.0)"


def test_a_drafting_lane_shows_acceptance_and_an_emulated_one_is_marked() -> None:
    spec = LaneSpec(
        name="mtp", model=MODEL, draft=Draft(kind="mtp", path=Path("/m/h.gguf"), emulate=[0.9, 0.8])
    )
    t = lane_envelope_table(lane("mtp", FAST, spec=spec, acceptance=0.918), JOB)
    assert t.title == "Envelope: mtp [emulated]"
    assert rows_by_cell(t)[(0, 1)][column(t, "Acceptance")] == "91.8% [emulated]"
    assert "[emulated]: emulated acceptance" in t.caption


def test_busy_cells_reuse_misses_and_failures_are_marked() -> None:
    result = lane("plain", SLOW)
    busy, missed = result.envelope[3], result.envelope[2]
    busy.busy = 2
    missed.reuse_ok, missed.reuse_min, missed.failed = 1, 0, 1
    t = lane_envelope_table(result, JOB)
    rows = rows_by_cell(t)
    assert rows[(4096, 2)][column(t, "Decode per stream")].endswith(" [busy 2/3]")
    assert "busy machine: 2 of 3 batches" in rows[(4096, 2)][-1]
    assert "[busy k/n]" in t.caption
    assert (
        "prefix reused by 1 of 3 requests" in rows[(4096, 1)][-1]
        and "1 request(s) failed" in rows[(4096, 1)][-1]
    )
    assert rows[(0, 1)][-1] == ""


def test_the_kernel_view_gets_a_column_when_measured() -> None:
    t = lane_envelope_table(lane("plain", SLOW, kernel_prefill=1500.0, kernel_decode=110.0), JOB)
    assert rows_by_cell(t)[(0, 1)][column(t, "Kernel pp / tg")] == "1500.0 / 110.0 tok/s"


def test_the_winner_map_names_a_clearly_faster_lane_with_its_margin() -> None:
    t = winner_table([lane("plain", SLOW), lane("mtp", FAST)])
    assert t is not None and t.title == "Where Each Lane Wins"
    decode = rows_by_cell(t)[(0, 1)][2]
    # 137 against 100, each ±2%: the margin's range runs from 134.26/102 to 139.74/98
    assert decode == "mtp 1.37× (1.32–1.43) over plain"
    ttft = rows_by_cell(t)[(0, 1)][4]
    assert ttft.startswith("within noise: ")  # the same TTFT in both lanes


def test_lanes_within_noise_name_no_winner() -> None:
    t = winner_table(
        [lane("f16", SLOW, rel=0.1), lane("q8", {k: v * 1.03 for k, v in SLOW.items()}, rel=0.1)]
    )
    assert t is not None
    for row in t.rows:
        assert row[2].startswith("within noise: q8, f16 (min–max ranges overlap"), row[2]
        assert " over " not in row[2]


def test_one_lane_has_no_winner_map() -> None:
    assert winner_table([lane("plain", SLOW)]) is None
    assert crossover_table([lane("plain", SLOW)]) is None


def test_crossovers_in_words_from_decided_cells() -> None:
    t = crossover_table([lane("plain", SLOW), lane("mtp", FAST)])
    assert t is not None and t.headers == ["What the envelope shows"]
    sentences = [r[0] for r in t.rows]
    want = "decode per stream, 1 stream: mtp leads plain: 1.37× at depth 0, 1.17× at depth 4k"
    assert any(s.startswith(want) for s in sentences), sentences


def test_emulated_lanes_carry_their_mark_in_the_winner_map() -> None:
    spec = LaneSpec(
        name="mtp", model=MODEL, draft=Draft(kind="mtp", path=Path("/m/h.gguf"), emulate=[0.9, 0.8])
    )
    t = winner_table([lane("plain", SLOW), lane("mtp", FAST, spec=spec)])
    assert t is not None and rows_by_cell(t)[(0, 1)][2].startswith("mtp [emulated] 1.37×")


def test_a_plain_run_has_no_envelope_tables() -> None:
    plain = lane("plain", {(0, 1): 80.0})
    assert envelope_tables([plain], JobSpec()) == []
    assert envelope_doc([plain]) is None
    assert lane_tables([plain], JobSpec()) == lane_tables(
        [LaneResult(name="plain", lane=plain.lane)], JobSpec()
    )


def test_a_single_deep_cell_is_an_envelope() -> None:
    tables = envelope_tables([lane("plain", {(4096, 1): 80.0})], JOB)
    assert [t.title for t in tables] == ["Envelope: plain", "Batch Throughput, Prefill Included"]


def data(*lanes: LaneResult) -> ReportData:
    run = RunInfo(run_id="r1", started_at="2026-01-01T00:00:00+00:00", lanebench_version="0", job=JOB,
                  host={"hostname": "box"}, status=RunStatus.DONE)  # fmt: skip
    return ReportData(runs=[RunData(run=run, lanes=list(lanes))])


def test_the_markdown_report_carries_the_envelope() -> None:
    md = render(data(lane("plain", SLOW), lane("mtp", FAST)), "md")
    for title in ("Envelope: plain", "Envelope: mtp", "Batch Throughput, Prefill Included",
                  "Where Each Lane Wins", "Crossovers"):  # fmt: skip
        assert f"### {title}\n" in md
    assert "| mtp 1.37× (1.32–1.43) over plain |" in md


def test_the_csv_has_a_row_per_cell_after_its_lane() -> None:
    rows = list(csv.DictReader(io.StringIO(render(data(lane("plain", SLOW), lane("mtp", FAST)), "csv"))))
    assert [(r["lane"], r["cell_depth"], r["cell_concurrency"]) for r in rows] == [
        ("plain", "", ""), *(("plain", str(d), str(c)) for d, c in KEYS),
        ("mtp", "", ""), *(("mtp", str(d), str(c)) for d, c in KEYS),
    ]  # fmt: skip
    deep = rows[4]
    assert float(deep["cell_decode_median"]) == 85.0 and deep["cell_decode_n"] == "6"
    assert float(deep["cell_nslot_aggregate_median"]) == pytest.approx(102.0)
    assert deep["decode_tps_median"] == "" and deep["run_id"] == "r1"
    assert set(CSV_COLUMNS) <= set(rows[0])


def test_the_json_report_carries_cells_winners_and_crossovers() -> None:
    doc = json.loads(render(data(lane("plain", SLOW), lane("mtp", FAST)), "json"))
    (run,) = doc["runs"]
    assert [(c["depth"], c["concurrency"]) for c in run["lanes"][0]["envelope"]] == KEYS
    first = run["envelope"]["winners"]["decode"][0]
    assert first["leader"] == "mtp" and first["decided"] and first["margin"] == pytest.approx(1.37)
    assert any("mtp leads plain" in s for s in run["envelope"]["crossovers"])
    assert "Where Each Lane Wins" in [t["title"] for t in doc["tables"]]


def test_the_run_json_round_trips_the_envelope() -> None:
    result = lane("plain", SLOW, busy=1, notes=["a note"])
    back = LaneResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.envelope == result.envelope


def test_a_cells_wait_beyond_the_prompt_timer_and_its_prompt_cache_work_are_csv_columns() -> None:
    cell = CellSummary(6000, 2, reps=3, requests=6)
    cell.ttft_beyond, cell.cache_s, cell.cache_events = Stat(0.18, 0.1, 0.2, 6), 0.53, 3
    row = dict(zip(CSV_COLUMNS, cell_csv(cell), strict=True))
    assert row["cell_ttft_beyond_median"] == 0.18 and row["cell_ttft_beyond_n"] == 6
    assert row["cell_cache_s"] == 0.53 and row["cell_cache_events"] == 3
    empty = dict(zip(CSV_COLUMNS, cell_csv(CellSummary(0, 1)), strict=True))
    assert empty["cell_ttft_beyond_median"] == "" and empty["cell_cache_s"] == ""
