"""Memory per lane through JSON, the store (schema 3), the tables, CSV and compare."""

from __future__ import annotations

from pathlib import Path

from lanebench.lanes import LaneSpec
from lanebench.records import JobSpec, LaneResult, MemoryRecord
from lanebench.report.compare import compare_rows
from lanebench.report.memory import CSV_COLUMNS, memory_cells, memory_table
from lanebench.report.tables import to_markdown
from lanebench.sinks import RunInfo
from lanebench.store import open_store
from lanebench.store.sink import StoreSink

MEM = MemoryRecord(ctx=512, slots=2, weights=247.82, kv=9.0, compute=20.78, log_host=277.6,
                   peak_rss=336.88, hwm=336.88, estimate=264.16, notes=["no nvidia-smi"])  # fmt: skip


def lane(name: str, mem: MemoryRecord | None) -> LaneResult:
    return LaneResult(name=name, lane=LaneSpec(name=name), memory=mem)


def test_json_and_store_round_trip(tmp_path: Path) -> None:
    assert LaneResult.from_dict(lane("a", MEM).to_dict()).memory == MEM
    store = open_store(str(tmp_path / "r.sqlite"))
    sink = StoreSink(store, fingerprints=False)
    run = RunInfo("r1", "2026-11-30T00:00:00+00:00", "t", JobSpec())
    sink.run_started(run)
    sink.lane_finished(run, lane("a", MEM))
    sink.lane_finished(run, lane("b", None))
    a, b = store.load_lanes("r1")
    assert a.memory == MEM and b.memory is None
    store.close()


def test_table_csv_and_compare() -> None:
    md = to_markdown(memory_table([lane("a", MEM), lane("b", None)]) or memory_table([]))  # type: ignore[arg-type]
    assert "| a | 512 × 2 | 247.8 MiB | 9.0 MiB | 20.8 MiB | – | 336.9 MiB | – | 264.2 MiB |" in md
    assert memory_table([lane("b", None)]) is None
    cells = memory_cells(MEM)
    assert len(cells) == len(CSV_COLUMNS) and cells[6] == 336.88 and cells[5] == ""
    bigger = MemoryRecord(ctx=512, slots=2, peak_rss=673.76)
    (row,) = [r for r in compare_rows([lane("a", MEM)], [lane("a", bigger)]) if r["figure"] == "peak_rss_mib"]
    assert row["ratio"] == 2.0 and row["label"] == "Peak RSS"


def test_html_has_a_stacked_memory_bar() -> None:
    from lanebench.report.memory_plot import memory_bars
    from lanebench.report.plots import _png, plain

    png = memory_bars([lane("a", MEM), lane("b", None)], _png, plain)
    assert png is not None and png.startswith(b"\x89PNG")
    assert memory_bars([lane("b", None)], _png, plain) is None
