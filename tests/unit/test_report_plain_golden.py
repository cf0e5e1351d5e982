"""A plain run's report (no envelope, or only the standard job's one cell, depth 0 x 1 stream)
is byte-identical to what lanebench wrote before the envelope was reported: markdown, CSV, JSON
and HTML (its plots replaced by fixed bytes), and the tables ``run`` prints.

The golden files under tests/fixtures/report/ were written by the report code as it was before
report/envelope.py existed; a change to a plain run's report must be deliberate (rewrite them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.records.busy import BusyRecord
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult, LaneStatus, RunStatus
from lanebench.records.run import RunInfo
from lanebench.records.samples import Stat
from lanebench.report import plots
from lanebench.report.data import ReportData, RunData
from lanebench.report.render import lane_tables, render
from lanebench.report.tables import to_markdown

GOLDEN = Path(__file__).parents[1] / "fixtures" / "report"
JOB = JobSpec(n_in=64, n_out=32, reps=3, warmup=1, aggregate=2)


def _s(median: float, rel: float = 0.02) -> Stat:
    return Stat(median, round(median * (1 - rel), 3), round(median * (1 + rel), 3), 3)


def _lane(spec: LaneSpec, decode: float, **extra: object) -> LaneResult:
    summary = {
        "prefill_tps": _s(900.0),
        "decode_tps": _s(decode),
        "normalized_wall_s": _s(64 / 900 + 32 / decode),
        "aggregate_tps": _s(decode * 1.4),
    }
    lane = LaneResult(name=spec.name, lane=spec, summary=summary, load_s=1.5, **extra)  # type: ignore[arg-type]
    return lane


def plain_data(with_single_cell: bool) -> ReportData:
    """Four lanes of a plain run: plain (busy figures), a drafting lane, an emulated one, a
    failed one. ``with_single_cell``: the plain lane also carries the standard job's one cell."""
    model = Path("/m/gemma-3-270m.gguf")
    plain = _lane(LaneSpec(name="plain", model=model), 80.0, flags=["a flag"])
    plain.busy = BusyRecord(cores=2, threshold_cores=0.5, busy_windows=1, windows=6, max_cores=1.2,
                            figures={"decode_tps": 1.1})  # fmt: skip
    if with_single_cell:
        plain.envelope = [CellSummary(0, 1, reps=3, requests=3, decode=_s(80.0), aggregate=_s(79.0))]
    draft = Draft(kind="model", path=Path("/m/draft.gguf"), block_size=3)
    drafting = _lane(LaneSpec(name="draft B=3", model=model, draft=draft), 95.0)
    drafting.summary["acceptance"] = _s(0.7)
    emu = Draft(kind="mtp", path=Path("/m/head.gguf"), emulate=[0.9, 0.8])
    emulated = _lane(LaneSpec(name="mtp B=3", model=model, draft=emu), 120.0)
    failed = LaneResult(name="broken", lane=LaneSpec(name="broken", model=model), status=LaneStatus.FAILED,
                        error="server exited with code 1", log_tail="line 1\nline 2")  # fmt: skip
    run = RunInfo(run_id="20260101-000000-abcd", started_at="2026-01-01T00:00:00+00:00",
                  lanebench_version="0.1.0", job=JOB, host={"hostname": "box", "cpus": 2},
                  status=RunStatus.DONE)  # fmt: skip
    return ReportData(runs=[RunData(run=run, lanes=[plain, drafting, emulated, failed])])


@pytest.fixture(autouse=True)
def fixed_pngs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plots as fixed bytes (matplotlib's PNGs differ between its versions); which plots a
    report has still shows in the HTML."""

    def fake_png(fig: object) -> bytes:
        plots.plt.close(fig)  # type: ignore[arg-type]
        return b"png"

    monkeypatch.setattr(plots, "_png", fake_png)


def outputs(data: ReportData) -> dict[str, str]:
    out = {fmt: render(data, fmt) for fmt in ("md", "csv", "json", "html")}
    rd = data.runs[0]
    out["run.md"] = "\n".join(to_markdown(t) for t in lane_tables(rd.lanes, rd.run.job))
    return out


@pytest.mark.parametrize("with_single_cell", [False, True], ids=["no-envelope", "single-cell"])
@pytest.mark.parametrize("fmt", ["md", "csv", "json", "html", "run.md"])
def test_a_plain_runs_report_is_unchanged(fmt: str, with_single_cell: bool) -> None:
    got = outputs(plain_data(with_single_cell))[fmt]
    name = f"plain-{'cell' if with_single_cell else 'none'}.{fmt}"
    assert got == (GOLDEN / name).read_text(encoding="utf-8"), f"{name} changed"
