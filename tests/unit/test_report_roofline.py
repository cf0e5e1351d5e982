"""The report's Decode Roofline table: ceiling = bandwidth / bytes per token, % = decode / ceiling."""

from __future__ import annotations

from pathlib import Path

from lanebench.analysis.roofline import roofline_of
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo
from lanebench.records.samples import Stat
from lanebench.report.roofline import ceilings_table


def test_ceilings_table_arithmetic(gemma_270m: Path) -> None:
    job = JobSpec(n_in=1150, n_out=200)
    run = RunInfo(run_id="r", started_at="t", lanebench_version="x", job=job)
    lane = LaneResult(name="plain", lane=LaneSpec(name="plain", model=gemma_270m, kv="f16"))
    lane.summary["decode_tps"] = Stat(80.0, 79.0, 81.0, 3)
    failed = LaneResult(
        name="gone", lane=LaneSpec(name="gone", model="/nonexistent.gguf", kv="f16"), status="failed"
    )
    table = ceilings_table(run.job, [lane, failed], {"bytes_per_s": 35e9, "source": "test"})
    per_token = roofline_of(gemma_270m, ctx=1150 + 100, kv_type="f16").total_bytes
    ceiling = 35e9 / per_token
    assert table.title == "Decode Roofline at 35 GB/s"
    assert table.rows[0] == [
        "plain",
        f"{per_token / 1e6:,.1f}",
        f"{ceiling:,.1f} tok/s",
        "80.0 tok/s",
        f"{100 * 80.0 / ceiling:.1f}%",
    ]
    assert table.rows[1][0] == "gone" and "does not exist" in table.rows[1][4]
