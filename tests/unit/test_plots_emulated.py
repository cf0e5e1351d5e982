"""Emulated lanes (synthetic acceptance, output not the model's) are marked in every plot of their
speed or acceptance: the label text, a hatch or marker of their own, and a legend entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo, StoredLane
from lanebench.records.samples import Stat
from lanebench.report import plots
from lanebench.report.data import ReportData, RunData

EMU = LaneSpec(
    name="mtp B=3",
    model=Path("/m/a.gguf"),
    draft=Draft(kind="mtp", path=Path("/m/h.gguf"), emulate=[0.9, 0.8]),
)
MEASURED = LaneSpec(
    name="draft B=3", model=Path("/m/a.gguf"), draft=Draft(kind="model", path=Path("/m/h.gguf"))
)
PLAIN = LaneSpec(name="plain", model=Path("/m/a.gguf"))


def result(spec: LaneSpec, decode: float, acceptance: float | None = None) -> LaneResult:
    summary = {"decode_tps": Stat(decode, decode - 1, decode + 1, 3), "prefill_tps": Stat(900, 890, 910, 3)}
    if acceptance is not None:
        summary["acceptance"] = Stat(acceptance, acceptance, acceptance, 3)
    return LaneResult(name=spec.name, lane=spec, summary=summary)


LANES = [result(PLAIN, 40), result(MEASURED, 50, 0.7), result(EMU, 60, 0.85)]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """The figures the plot functions draw, kept open instead of turned into PNG bytes."""
    figs: list[Figure] = []
    monkeypatch.setattr(plots, "_png", lambda fig: figs.append(fig) or b"png")
    yield figs
    for f in figs:
        plt.close(f)


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]  # type: ignore[attr-defined]


def legend_texts(fig: Figure) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def test_lane_bars_hatch_and_label_the_emulated_lane(drawn: list[Figure]) -> None:
    assert plots.lane_bars(LANES, "run x") == b"png"
    (fig,) = drawn
    for ax in fig.axes:
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert ticks == ["plain", "draft B=3", "mtp B=3 [emulated]"]
        hatches = [bar.get_hatch() for bar in ax.patches]
        assert hatches == [None, None, "//"]
    legend = legend_texts(fig)
    assert "measured" in legend and any(t.startswith("[emulated] emulated acceptance") for t in legend)


def test_lane_bars_without_emulated_lanes_have_no_emulated_legend(drawn: list[Figure]) -> None:
    plots.lane_bars(LANES[:2], "run x")
    assert not any("emulated" in t for t in texts(drawn[0]))


def test_acceptance_vs_block_draws_emulated_acceptance_as_its_own_line(drawn: list[Figure]) -> None:
    assert plots.acceptance_vs_block(LANES) == b"png"
    (fig,) = drawn
    legend = legend_texts(fig)
    assert "a.gguf + h.gguf" in legend and "a.gguf + h.gguf [emulated]" in legend
    assert any(t.startswith("[emulated] emulated acceptance") for t in legend)
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles["a.gguf + h.gguf [emulated]"] == "--" and styles["a.gguf + h.gguf"] == "-"


def test_prefill_decode_labels_and_separates_emulated_points(drawn: list[Figure]) -> None:
    assert plots.prefill_decode(LANES) == b"png"
    (fig,) = drawn
    annotations = [a.get_text() for a in fig.axes[0].texts]
    assert "mtp B=3 [emulated]" in annotations and "plain" in annotations
    legend = legend_texts(fig)
    assert "measured" in legend and any(t.startswith("[emulated] emulated acceptance") for t in legend)


def test_history_marks_an_emulated_lane(drawn: list[Figure]) -> None:
    run = RunInfo(run_id="r2", started_at="2026-12-02", lanebench_version="0", job=JobSpec())
    rows = [
        StoredLane(lane.name, lane.lane, rid, day, summary={"decode_tps": lane.summary["decode_tps"]})
        for lane in LANES
        for rid, day in (("r1", "2026-12-01"), ("r2", "2026-12-02"))
    ]
    data = ReportData(runs=[RunData(run=run, lanes=LANES)], history=rows)
    assert plots.history(data) == b"png"
    legend = legend_texts(drawn[0])
    assert "mtp B=3 [emulated]" in legend and "plain" in legend


def test_plain_keeps_the_grid_values_of_a_long_name() -> None:
    name = "Gemma 4 26B-A4B QAT Q4_0, QAT MTP + Q8 KV, long notes here [kv=q8_0] [emulated]"
    short = plots.plain(name, 48)
    assert len(short) == 48 and short.endswith("… [kv=q8_0] [emulated]")
    assert plots.plain("short [kv=f16]") == "short [kv=f16]"
