"""Memory per lane through JSON, the store (schema 3), the tables, CSV and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.lane import LaneResult
from lanebench.records.memory import DeviceMemory, MemoryRecord
from lanebench.records.run import RunInfo
from lanebench.report.compare import compare_rows
from lanebench.report.memory import CSV_COLUMNS, memory_cells, memory_table
from lanebench.report.tables import to_markdown
from lanebench.store import open_store
from lanebench.store.sink import StoreSink

MEM = MemoryRecord(ctx=512, slots=2, weights=247.82, kv=9.0, compute=20.78, log_host=277.6,
                   peak_rss=336.88, hwm=336.88, estimate=264.16, notes=["no nvidia-smi"])  # fmt: skip


def lane(name: str, mem: MemoryRecord | None) -> LaneResult:
    return LaneResult(name=name, lane=LaneSpec(name=name), memory=mem)


def test_json_and_store_round_trip(tmp_path: Path) -> None:
    assert LaneResult.from_dict(lane("a", MEM).to_dict()).memory == MEM
    store = open_store(str(tmp_path / "r.sqlite"))
    sink = StoreSink(store)
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


def test_device_table_only_for_split_lanes() -> None:
    from lanebench.report.memory import DEVICE_CSV_COLUMNS, device_rows, device_table, is_split

    def d(name: str, w: float | None, **kw: Any) -> DeviceMemory:
        return DeviceMemory(name, w, **kw)

    one_gpu = MemoryRecord(devices=[d("CUDA0", 9.0, weights_share=1.0), d("host", 9.0),
                                    d("GPU1 (NVIDIA H200)", None, peak_vram=648.0)])  # fmt: skip
    rpc = MemoryRecord(devices=[d("CUDA0", 9.03, weights_share=0.9923, peak_vram=650.0),
                                d("RPC0[127.0.0.1:50052]", 0.07, weights_share=0.0077, kv=1.28)])  # fmt: skip
    two = MemoryRecord(devices=[d("CUDA0", 1.0), d("Vulkan1", 1.0)])
    assert not is_split(one_gpu) and is_split(rpc) and is_split(two) and not is_split(None)
    assert device_table([lane("a", one_gpu), lane("b", None)]) is None
    table = device_table([lane("a", one_gpu), lane("r", rpc)])
    assert table is not None and table.title == "Memory per Device"
    assert table.rows == [
        ["r", "CUDA0", "9.0 MiB", "–", "–", "–", "99.2%", "650.0 MiB"],
        ["r", "RPC0[127.0.0.1:50052]", "0.1 MiB", "1.3 MiB", "–", "–", "0.8%", "–"],
    ]
    rows = device_rows([lane("r", rpc)])
    assert len(rows[0]) == len(DEVICE_CSV_COLUMNS) and rows[1][:3] == ["r", "RPC0[127.0.0.1:50052]", 0.07]
    assert rows[0][7] == 650.0 and rows[1][7] == ""


def test_report_and_run_output_include_the_device_table() -> None:
    from lanebench.cli.execute import render
    from lanebench.report.data import ReportData, RunData
    from lanebench.report.render import report_tables

    split = MemoryRecord(devices=[DeviceMemory("CUDA0", weights=1.0), DeviceMemory("CUDA1", weights=3.0)])
    run = RunInfo("r1", "2026-11-30T00:00:00+00:00", "t", JobSpec())
    titles = [t.title for t in report_tables(ReportData([RunData(run, [lane("a", split)])]))]
    assert titles.index("Memory per Device") == titles.index("Memory") + 1
    plain = [t.title for t in report_tables(ReportData([RunData(run, [lane("a", MEM)])]))]
    assert "Memory" in plain and "Memory per Device" not in plain
    md = render(JobSpec(), [lane("a", split)], None)  # the run's terminal output
    assert "### Memory per Device" in md and "| a | CUDA1 | 3.0 MiB |" in md
