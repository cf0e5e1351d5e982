"""The one rule that says whether a lane is measurably better than another (lanebench.analysis.noise)."""

from __future__ import annotations

import math

import pytest

from lanebench.analysis.noise import Side, judge, judge_stats, no_difference_text, samples_standing, standing
from lanebench.records.samples import Stat


def test_a_clear_win_names_the_better_side_with_the_ratio_and_its_range() -> None:
    v = judge([70.0, 71.0, 72.0], [79.0, 80.0, 81.0])
    assert v.better == Side.B and v.measurable and v.outcome == "B better"
    assert v.ratio == pytest.approx(80 / 71)
    assert (v.ratio_low, v.ratio_high) == (pytest.approx(79 / 72), pytest.approx(81 / 70))
    assert v.p_chance == pytest.approx(0.10)  # 2 / C(6, 3): both directions of a full separation
    assert v.test == "min–max ranges apart, 3 vs 3 reps, p = 0.10 by chance"
    assert v.ratio_text() == "1.127 (1.097–1.157)"
    assert judge([79.0, 80.0, 81.0], [70.0, 71.0, 72.0]).better == Side.A


def test_overlapping_spreads_are_no_measurable_difference() -> None:
    """The issue's case: 79.41 against 78.62 tok/s, 1% apart, spreads overlapping."""
    v = judge([78.62, 77.9, 80.1], [79.41, 78.3, 81.0])
    assert v.better is None and not v.measurable
    assert v.outcome == "no measurable difference"
    assert v.test == "min–max ranges overlap, 3 vs 3 reps"
    assert v.ratio == pytest.approx(79.41 / 78.62)
    assert v.ratio_low is not None and v.ratio_high is not None
    assert v.ratio_low < 1 < v.ratio_high  # the ratio's range holds 1 when the ranges overlap


def test_touching_ranges_overlap() -> None:
    assert judge([1.0, 2.0, 3.0], [3.0, 4.0, 5.0]).better is None


def test_identical_samples_are_no_measurable_difference() -> None:
    v = judge([50.0, 50.0, 50.0], [50.0, 50.0, 50.0])
    assert v.better is None and v.outcome == "no measurable difference"
    assert v.ratio == 1.0 and v.ratio_text() == "1.000"


def test_one_sample_each_has_no_spread_to_judge() -> None:
    v = judge([50.0], [90.0])
    assert v.better is None and v.outcome == "no spread to judge" and v.test == "1 sample each"
    assert v.ratio == pytest.approx(1.8)


@pytest.mark.parametrize(
    ("n_a", "n_b", "named"),
    [(2, 2, False), (2, 3, False), (1, 10, False), (3, 3, True), (3, 4, True), (2, 5, True), (1, 19, True)],
)
def test_a_separation_names_a_winner_only_with_enough_reps(n_a: int, n_b: int, named: bool) -> None:
    """Complete separation happens by chance with p = 2 / C(n_a + n_b, n_a); it must be <= 0.10."""
    v = judge([10.0 + i * 0.1 for i in range(n_a)], [20.0 + i * 0.1 for i in range(n_b)])
    assert v.p_chance == pytest.approx(min(1.0, 2 / math.comb(n_a + n_b, n_a)))
    assert v.measurable is named
    if not named:
        assert v.outcome == "no measurable difference" and "cannot show it" in v.test


def test_lower_is_better_figures_turn_the_winner_around() -> None:
    walls_a, walls_b = [40.0, 41.0, 42.0], [33.0, 34.0, 35.0]  # seconds: B takes less
    assert judge(walls_a, walls_b, higher_is_better=False).better == Side.B
    assert judge(walls_a, walls_b, higher_is_better=False).outcome == "B better"
    assert judge(walls_a, walls_b, higher_is_better=True).outcome == "B worse"
    assert judge(walls_a, walls_b, higher_is_better=False).ratio == pytest.approx(34 / 41)


def test_a_minimum_margin_turns_a_small_separation_into_no_difference() -> None:
    a, b = [100.0, 100.1, 100.2], [101.0, 101.1, 101.2]  # apart, but by 1%
    assert judge(a, b).better == Side.B
    v = judge(a, b, min_margin=0.05)
    assert v.better is None and "1.0% < the 5% minimum margin" in v.test


def test_a_side_without_samples_is_nothing_to_compare() -> None:
    v = judge([], [1.0, 2.0])
    assert not v.judged and v.outcome == "nothing to compare" and v.test == "no samples for A"
    assert judge_stats(Stat(1, 1, 1, 1), None).test == "no samples for B"


def test_summaries_give_the_same_verdict_as_samples() -> None:
    a, b = [70.0, 71.0, 72.0], [79.0, 80.0, 81.0]
    assert judge_stats(Stat(71, 70, 72, 3), Stat(80, 79, 81, 3)) == judge(a, b)


def test_no_difference_text_names_both_lanes_and_the_test() -> None:
    v = judge([78.62, 77.9, 80.1], [79.41, 78.3, 81.0])
    text = no_difference_text("t [kv=f16]", "t [kv=q8_0]", v)
    assert text.startswith("no measurable difference between t [kv=f16] and t [kv=q8_0] (")
    assert "t [kv=q8_0] / t [kv=f16] = 1.010 (" in text and text.endswith(
        "min–max ranges overlap, 3 vs 3 reps)"
    )


def test_standing_names_a_leader_and_the_lanes_tied_with_it() -> None:
    st = samples_standing({"slow": [1.0, 2.0, 3.0], "mid": [4.0, 5.0, 6.0], "top": [3.5, 5.5, 7.0]})
    assert st.leader == "top" and st.tied == ["mid"] and not st.decided
    assert st.verdicts["slow"].better == Side.A  # A = the leader
    assert st.to_dict()["verdicts"]["mid"]["outcome"] == "no measurable difference"


def test_standing_decides_when_the_leader_is_apart_from_every_other_lane() -> None:
    st = samples_standing({"a": [1.0, 2.0, 3.0], "b": [7.0, 8.0, 9.0]})
    assert st.leader == "b" and st.decided


def test_standing_for_lower_is_better_and_missing_figures() -> None:
    st = standing({"fast": Stat(30, 29, 31, 3), "none": None, "slow": Stat(40, 39, 41, 3)}, False)
    assert st.leader == "fast" and st.decided and list(st.verdicts) == ["slow"]
    assert standing({"x": None}).leader is None


def test_standing_keeps_the_first_of_equal_medians_as_leader() -> None:
    st = standing({"first": Stat(5, 4, 6, 3), "second": Stat(5, 4, 6, 3)})
    assert st.leader == "first" and st.tied == ["second"]
