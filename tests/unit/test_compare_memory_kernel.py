"""compare: peak VRAM beside peak RSS, each device's peak VRAM, and the kernel view (llama-bench)."""

from __future__ import annotations

from typing import Any

import pytest

from lanebench.config.lanes import LaneSpec
from lanebench.records.baseline import BaselineRecord
from lanebench.records.lane import LaneResult
from lanebench.records.memory import DeviceMemory, MemoryRecord
from lanebench.records.samples import Stat
from lanebench.report.compare import compare_rows, compare_table, kernel_stat


def lane(mem: MemoryRecord | None = None, base: BaselineRecord | None = None) -> LaneResult:
    return LaneResult(name="x", lane=LaneSpec(name="x"), memory=mem, baseline=base)


def rows_by_figure(a: LaneResult, b: LaneResult) -> dict[str, dict[str, Any]]:
    return {r["figure"]: r for r in compare_rows([a], [b])}


def dev(name: str, peak: float | None) -> DeviceMemory:
    return DeviceMemory(name, weights=1.0, peak_vram=peak)


def test_peak_vram_rows_total_and_per_device() -> None:
    a = MemoryRecord(peak_rss=100.0, peak_vram=1000.0, devices=[dev("CUDA0", 600.0), dev("CUDA1", 400.0)])
    b = MemoryRecord(peak_rss=100.0, peak_vram=1500.0, devices=[dev("CUDA0", 900.0), dev("RPC0[h:1]", None)])
    rows = rows_by_figure(lane(a), lane(b))
    assert list(rows) == ["peak_rss_mib", "peak_vram_mib", "peak_vram_mib:CUDA0"]  # CUDA1 only in A
    assert rows["peak_vram_mib"]["ratio"] == 1.5 and rows["peak_vram_mib"]["label"] == "Peak VRAM"
    assert (
        rows["peak_vram_mib:CUDA0"]["label"] == "Peak VRAM CUDA0"
        and rows["peak_vram_mib:CUDA0"]["ratio"] == 1.5
    )
    assert rows["peak_vram_mib"]["verdict"] == "no spread to judge (1 sample each)"
    table = compare_table("A", "B", compare_rows([lane(a)], [lane(b)]))
    assert [
        "x",
        "Peak VRAM CUDA0",
        "600.0 MiB",
        "900.0 MiB",
        "1.500",
        "no spread to judge (1 sample each)",
    ] in table.rows


def test_no_vram_row_without_vram_figures() -> None:
    rows = rows_by_figure(lane(MemoryRecord(peak_rss=1.0)), lane(MemoryRecord(peak_rss=2.0)))
    assert list(rows) == ["peak_rss_mib"]


def base(prefill: float, decode: float, sd: float, reps: int = 3, **extra: Any) -> BaselineRecord:
    return BaselineRecord(
        prefill_tps=prefill, prefill_sd=sd, decode_tps=decode, decode_sd=sd, reps=reps, **extra
    )


def test_kernel_rows_from_mean_and_sd() -> None:
    rows = rows_by_figure(lane(base=base(1000.0, 50.0, 5.0)), lane(base=base(1200.0, 51.0, 5.0)))
    pre, dec = rows["kernel_prefill_tps"], rows["kernel_decode_tps"]
    assert pre["label"] == "Kernel prefill" and pre["a"] == {
        "median": 1000.0,
        "min": 995.0,
        "max": 1005.0,
        "n": 3,
    }
    assert pre["ratio"] == pytest.approx(1.2) and pre["verdict"].startswith("B better (min–max ranges apart")
    assert dec["label"] == "Kernel decode" and dec["verdict"].startswith(
        "no measurable difference (min–max ranges overlap"
    )
    worse = rows_by_figure(lane(base=base(1000.0, 50.0, 1.0)), lane(base=base(900.0, 50.0, 1.0)))
    assert worse["kernel_prefill_tps"]["verdict"].startswith("B worse (min–max ranges apart")


def test_kernel_stat_prefers_the_reps_own_rates() -> None:
    rec = base(1000.0, 50.0, 5.0, prefill_samples=[990.0, 1020.0, 1001.0])
    assert kernel_stat(rec, "prefill") == Stat(1001.0, 990.0, 1020.0, 3)
    assert kernel_stat(rec, "decode") == Stat(50.0, 45.0, 55.0, 3)
    assert kernel_stat(None, "decode") is None
    assert kernel_stat(BaselineRecord(note="llama-bench did not run"), "prefill") is None


def test_kernel_rows_of_a_document_written_before_baselines_were_records() -> None:
    """A run document stored the kernel view as a dict (before ``BaselineRecord`` rode on
    ``LaneResult``, and before it kept each rep's rate): read back, compare still gets its rows."""
    old = lane(base=base(1000.0, 50.0, 5.0)).to_dict()
    for key in ("prefill_samples", "decode_samples", "decode_argv", "prefill_depth", "decode_depth", "load"):
        del old["baseline"][key]
    back = LaneResult.from_dict(old)
    assert type(back.baseline) is BaselineRecord and back.baseline.prefill_samples == []
    rows = rows_by_figure(back, lane(base=base(1200.0, 51.0, 5.0)))
    assert rows["kernel_prefill_tps"]["a"] == {"median": 1000.0, "min": 995.0, "max": 1005.0, "n": 3}


def test_kernel_rows_only_where_a_run_has_a_baseline() -> None:
    assert "kernel_prefill_tps" not in rows_by_figure(lane(), lane())
    one_sided = rows_by_figure(lane(), lane(base=base(1000.0, 50.0, 5.0)))
    assert one_sided["kernel_decode_tps"]["verdict"] == "–" and one_sided["kernel_decode_tps"]["a"] is None
