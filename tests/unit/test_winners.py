"""The winner map: a faster lane is named with its margin where the data show it, and no lane is
named where the margin is inside the noise (constructed lanes that differ in a known way)."""

from __future__ import annotations

import pytest

from lanebench.analysis.winners import cell_winner, crossovers, winner_map
from lanebench.records.envelope import CellSummary
from lanebench.records.samples import Stat


def spread(median: float, rel: float = 0.02, n: int = 6) -> Stat:
    return Stat(median=median, min=median * (1 - rel), max=median * (1 + rel), n=n)


def cells(decode_by_cell: dict[tuple[int, int], Stat]) -> list[CellSummary]:
    return [CellSummary(d, c, decode=s) for (d, c), s in decode_by_cell.items()]


def test_the_faster_lane_wins_a_cell_with_its_margin() -> None:
    w = cell_winner((0, 1), "decode", {"plain": spread(100.0), "mtp": spread(137.0)})
    assert w.decided and w.leader == "mtp" and w.runner_up == "plain"
    assert w.margin == pytest.approx(1.37)
    lo, hi = w.margin_range or (0, 0)
    assert lo < 1.37 < hi and lo > 1
    assert w.text().startswith("mtp by 1.37×")


def test_no_winner_inside_the_noise() -> None:
    w = cell_winner((0, 1), "decode", {"f16": spread(78.6, 0.05), "q8": spread(79.4, 0.05)})
    assert not w.decided and w.leader == "q8" and w.tied == ["f16"]
    assert w.text().startswith("no measurable difference (q8, f16;")


def test_too_few_repetitions_name_no_winner() -> None:
    w = cell_winner((0, 1), "decode", {"a": spread(100.0, 0.01, n=2), "b": spread(200.0, 0.01, n=2)})
    assert not w.decided and "cannot show it" in (w.verdict.test if w.verdict else "")


def test_for_times_lower_is_better() -> None:
    w = cell_winner((0, 8), "ttft", {"a": spread(0.5), "b": spread(0.25)})
    assert w.decided and w.leader == "b" and w.margin == pytest.approx(2.0)


def test_winner_map_and_crossovers_in_words() -> None:
    lanes = {
        "plain F16": cells({(0, 1): spread(192.5), (32768, 1): spread(172.0), (0, 8): spread(202.5)}),
        "MTP B=3": cells({(0, 1): spread(263.2), (32768, 1): spread(201.0), (0, 8): spread(203.0, 0.1)}),
    }
    winners = winner_map(lanes, "decode")
    assert [w.cell for w in winners] == [(0, 1), (0, 8), (32768, 1)]
    assert [w.decided for w in winners] == [True, False, True]
    words = crossovers(winners)
    assert any("1 stream: MTP B=3 leads plain F16: 1.37× at depth 0, 1.17× at depth 32k" in s for s in words)
    assert any("depth 0" in s and "no measurable difference at 8 streams" in s for s in words)


def test_a_lead_that_changes_hands_is_said_so() -> None:
    lanes = {
        "A": cells({(0, 1): spread(150.0), (0, 4): spread(100.0)}),
        "B": cells({(0, 1): spread(100.0), (0, 4): spread(150.0)}),
    }
    (sentence,) = crossovers(winner_map(lanes, "decode"))
    assert "the lead changes: A by 1.50× at 1 stream; B by 1.50× at 4 streams" in sentence
