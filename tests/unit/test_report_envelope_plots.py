"""The envelope's plots from constructed cells: a line per lane and level of the other axis, each
point the cell's median with its min–max as the error bar; an emulated lane dashed and named as
such; a plot with no line of two points is not drawn; the report and its HTML carry them, a plain
run's do not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from tests.unit.test_report_envelope import FAST, SLOW, data, lane

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.report import envelope_plots as ep
from lanebench.report import plots
from lanebench.report.html import to_html


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """The figures drawn, kept open instead of turned into PNG bytes."""
    figs: list[Figure] = []
    monkeypatch.setattr(plots, "_png", lambda fig: figs.append(fig) or b"png")
    yield figs
    for f in figs:
        plt.close(f)


def png(figs: list[Figure]) -> ep.Png:
    return lambda fig: figs.append(fig) or b"png"


def lines_of(fig: Figure) -> dict[str, Line2D]:
    """Each error-bar series' label -> its data line."""
    return {str(c.get_label()): c.lines[0] for c in fig.axes[0].containers}  # type: ignore[attr-defined]


def series(fig: Figure) -> dict[str, tuple[list[float], list[float]]]:
    """Each plotted line's label -> (x, y)."""
    return {k: (list(v.get_xdata()), list(v.get_ydata())) for k, v in lines_of(fig).items()}  # type: ignore[arg-type]


def test_decode_vs_depth_has_a_line_per_lane_and_concurrency(drawn: list[Figure]) -> None:
    figs: list[Figure] = []
    assert ep.decode_vs_depth([lane("plain", SLOW), lane("mtp", FAST)], png(figs), plots.plain) == b"png"
    (fig,) = figs
    got = series(fig)
    assert got["plain, 1 stream"] == ([0, 4096], [100.0, 100.0])
    assert got["mtp, 2 streams"] == ([0, 4096], [120.0, 100.0])
    assert set(got) == {"plain, 1 stream", "plain, 2 streams", "mtp, 1 stream", "mtp, 2 streams"}
    plt.close(fig)


def test_error_bars_span_each_cells_min_to_max() -> None:
    figs: list[Figure] = []
    ep.aggregate_vs_concurrency([lane("plain", SLOW)], png(figs), plots.plain)
    (fig,) = figs
    bars = [c for c in fig.axes[0].collections if c.get_segments()]  # type: ignore[attr-defined]
    spans = sorted((float(seg[0][1]), float(seg[1][1])) for c in bars for seg in np.asarray(c.get_segments()))  # type: ignore[attr-defined]
    # the steady aggregate at depth 0: 100 (1 stream) and 180 (2 streams), each ±2%
    assert spans[0] == pytest.approx((98.0, 102.0)) and (176.4, 183.6) in [pytest.approx(s) for s in spans]
    plt.close(fig)


def test_ttft_p50_against_concurrency() -> None:
    figs: list[Figure] = []
    assert ep.ttft_vs_concurrency([lane("plain", SLOW)], png(figs), plots.plain) == b"png"
    (fig,) = figs
    assert series(fig)["plain, depth 4,096"] == ([1, 2], [pytest.approx(0.1), pytest.approx(0.2)])
    plt.close(fig)


def test_an_emulated_lane_is_dashed_and_named() -> None:
    spec = LaneSpec(name="mtp", model=Path("/m/a.gguf"), draft=Draft(kind="mtp", path=Path("/m/h.gguf"),
                                                                    emulate=[0.9, 0.8]))  # fmt: skip
    figs: list[Figure] = []
    ep.decode_vs_depth([lane("plain", SLOW), lane("mtp", FAST, spec=spec)], png(figs), plots.plain)
    (fig,) = figs
    styles = {k: v.get_linestyle() for k, v in lines_of(fig).items()}
    assert styles["mtp [emulated], 1 stream"] == "--" and styles["plain, 1 stream"] == "-"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]  # type: ignore[union-attr]
    assert any(t.startswith("[emulated] emulated acceptance") for t in legend)
    plt.close(fig)


def test_a_plot_without_a_line_of_two_points_is_not_drawn() -> None:
    one_depth = lane("plain", {(0, 1): 80.0, (0, 2): 70.0})
    assert ep.decode_vs_depth([one_depth], png([]), plots.plain) is None
    one_level = lane("plain", {(0, 1): 80.0, (4096, 1): 70.0})
    assert ep.aggregate_vs_concurrency([one_level], png([]), plots.plain) is None
    assert ep.envelope_plots([lane("plain", {(0, 1): 80.0})], png([]), plots.plain) == []


def test_the_report_saves_and_embeds_the_envelope_plots(drawn: list[Figure], tmp_path: Path) -> None:
    report = data(lane("plain", SLOW), lane("mtp", FAST))
    html = to_html(report, [], tmp_path)
    for stem in (
        "envelope-decode-vs-depth",
        "envelope-aggregate-vs-concurrency",
        "envelope-ttft-vs-concurrency",
    ):
        assert (tmp_path / f"{stem}-1.png").read_bytes() == b"png"
    assert "<figcaption>Envelope: decode per stream vs depth, run r1</figcaption>" in html


def test_a_plain_run_has_no_envelope_plots(drawn: list[Figure]) -> None:
    names = [name for name, _, _ in plots.all_plots(data(lane("plain", {(0, 1): 80.0})))]
    assert not any(n.startswith("envelope") for n in names)
