"""The speculative model: the formula's limits and monotonicity, the best block size, fitting
alpha, and advice from a run document shaped like ``lanebench run --json`` output."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from lanebench.analysis.specmodel import (
    Advice,
    alpha_from_tokens_per_step,
    best_block_size,
    expected_tokens_per_step,
    speedup,
)
from lanebench.analysis.specmodel import advise as advise_lanes
from lanebench.records.lane import results_from_document


@pytest.mark.parametrize("n", [0, 1, 3, 7, 32])
def test_alpha_zero_gives_one_token_per_step(n: int) -> None:
    assert expected_tokens_per_step(0.0, n) == 1.0


@pytest.mark.parametrize("n", [0, 1, 3, 7, 32])
def test_alpha_to_one_limit_is_n_plus_one(n: int) -> None:
    assert expected_tokens_per_step(1.0, n) == n + 1
    assert expected_tokens_per_step(1.0 - 1e-9, n) == pytest.approx(n + 1, rel=1e-6)


def test_hand_values() -> None:
    assert expected_tokens_per_step(0.5, 3) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    assert expected_tokens_per_step(0.8, 1) == pytest.approx(1.8)
    assert speedup(0.8, 4, 0.0) == pytest.approx(expected_tokens_per_step(0.8, 4))
    assert speedup(0.8, 4, 0.1) == pytest.approx((1 - 0.8**5) / 0.2 / 1.4)


def test_monotone_in_alpha_and_in_n() -> None:
    alphas = [i / 20 for i in range(21)]
    for n in (1, 2, 4, 8):
        values = [expected_tokens_per_step(a, n) for a in alphas]
        assert all(b > a for a, b in itertools.pairwise(values))
    for a in (0.1, 0.5, 0.9):
        values = [expected_tokens_per_step(a, n) for n in range(10)]
        assert all(b > a_ for a_, b in itertools.pairwise(values))
        # with diminishing returns: each extra drafted token adds alpha**n
        assert all(values[n + 1] - values[n] == pytest.approx(a ** (n + 1)) for n in range(9))


def test_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        expected_tokens_per_step(1.2, 3)
    with pytest.raises(ValueError):
        expected_tokens_per_step(0.5, -1)
    with pytest.raises(ValueError):
        speedup(0.5, 3, -0.1)


def test_best_block_size_brute_force() -> None:
    for alpha, cost in ((0.9, 0.05), (0.7, 0.1), (0.95, 0.02), (0.5, 0.3)):
        by_hand = max(range(1, 34), key=lambda b: ((1 - alpha**b) / (1 - alpha)) / (1 + (b - 1) * cost))
        block, s = best_block_size(alpha, cost)
        assert block == by_hand
        assert s == pytest.approx(speedup(alpha, block - 1, cost) if block > 1 else 1.0)


def test_best_block_size_edges() -> None:
    assert best_block_size(0.0, 0.1) == (1, 1.0)  # nothing accepted: never draft
    assert best_block_size(0.3, 1.0)[0] == 1  # a draft as costly as the target never pays
    assert best_block_size(1.0, 0.0) == (33, 33.0)  # free and perfect: the largest block


@pytest.mark.parametrize(("alpha", "n"), [(0.3, 2), (0.8, 3), (0.97, 4), (0.6, 2.5)])
def test_alpha_fit_inverts_the_formula(alpha: float, n: float) -> None:
    tokens = (1 - alpha ** (n + 1)) / (1 - alpha)
    assert alpha_from_tokens_per_step(tokens, n) == pytest.approx(alpha, abs=1e-9)


def _lane(
    name: str, decode_tps: float, draft: dict[str, Any] | None, timings: dict[str, int]
) -> dict[str, Any]:
    sample = {
        "kind": "single",
        "rep": 0,
        "n_in": 1150,
        "n_out": 200,
        "ok": True,
        "timings": {"predicted_per_second": decode_tps, **timings},
    }
    return {
        "name": name,
        "lane": {"name": name, "model": "/m/gemma.gguf", "kv": "f16", "draft": draft},
        "samples": [sample, {**sample, "kind": "warmup"}],
        "summary": {"decode_tps": {"median": decode_tps, "min": decode_tps, "max": decode_tps, "n": 1}},
    }


def _doc() -> dict[str, Any]:
    draft = {"kind": "model", "path": "/m/gemma.gguf", "block_size": 5}
    return {
        "run": {"job": {"n_in": 1150, "n_out": 200}},
        "lanes": [
            _lane("plain", 40.0, None, {"predicted_n": 200}),
            _lane("draft", 50.0, draft, {"predicted_n": 200, "draft_n": 168, "draft_n_accepted": 157}),
        ],
    }


def advise(doc: dict[str, Any]) -> list[Advice]:
    """The advice for a run document, read the way ``lanebench advise RESULTS.json`` reads it."""
    return advise_lanes(results_from_document(doc, "test").lanes)


def test_advise_hand_computed() -> None:
    (a,) = advise(_doc())
    steps = 200 - 157  # each step emits one token of the target's own
    assert a.lane == "draft" and a.block_size == 5 and a.draft_n == 4
    assert a.acceptance == pytest.approx(157 / 168)
    assert a.drafted_per_step == pytest.approx(168 / steps)
    assert a.tokens_per_step == pytest.approx(200 / steps)
    assert a.plain_lane == "plain"
    assert a.measured_speedup == pytest.approx(1.25)
    ratio = (200 / steps) / 1.25  # step time over plain token time
    assert a.step_cost_ratio == pytest.approx(ratio)
    assert a.draft_cost == pytest.approx((ratio - 1) / (168 / steps))
    assert a.best_block_size is not None and a.best_speedup is not None
    assert a.best_speedup >= (a.model_speedup or 0)
    assert len(a.curve) == 32
    assert max(s for _, s in a.curve) == pytest.approx(a.best_speedup) or a.best_block_size == 1


def test_advise_without_plain_lane_says_cost_unknown() -> None:
    doc = _doc()
    doc["lanes"] = doc["lanes"][1:]
    (a,) = advise(doc)
    assert a.alpha is not None and a.draft_cost is None and a.best_block_size is None
    assert any("cost is unknown" in n for n in a.notes)


def test_advise_lane_that_never_drafted() -> None:
    doc = _doc()
    doc["lanes"][1]["samples"][0]["timings"] = {"predicted_n": 200}
    (a,) = advise(doc)
    assert a.acceptance is None and a.alpha is None
    assert any("did not speculate" in n for n in a.notes)


def test_advise_plain_partner_must_be_same_model() -> None:
    doc = _doc()
    doc["lanes"][0]["lane"]["model"] = "/m/other.gguf"
    (a,) = advise(doc)
    assert a.plain_lane is None


def test_advise_rejects_non_run_documents() -> None:
    with pytest.raises(ValueError, match="lanes"):
        advise({"run": {}})
    assert advise({"lanes": [_lane("plain", 40.0, None, {"predicted_n": 10})]}) == []


def _simulated_lane(
    name: str, block: int, alpha: float, cost: float, rng: np.random.Generator
) -> dict[str, Any]:
    """A drafting lane measured on a simulated engine (not on the formula): each step drafts
    n = B - 1 tokens, accepts each with probability ``alpha`` until the first rejection, then
    adds the target's own token; a step costs 1 + n·cost plain-token times (plain: 40 tok/s)."""
    n, steps = block - 1, 20_000
    accepted_run = np.minimum(rng.geometric(1 - alpha, size=steps) - 1, n) if alpha < 1 else np.full(steps, n)
    accepted = int(accepted_run.sum())
    gen = steps + accepted
    tps = 40.0 * (gen / steps) / (1 + n * cost)
    draft = {"kind": "model", "path": "/m/gemma.gguf", "block_size": block}
    return _lane(name, tps, draft, {"predicted_n": gen, "draft_n": steps * n, "draft_n_accepted": accepted})


@pytest.mark.parametrize(("alpha", "cost"), [(0.55, 0.08), (0.8, 0.3), (0.9, 0.02)])
def test_the_fit_predicts_block_sizes_it_was_not_fitted_to(alpha: float, cost: float) -> None:
    """Fit α and the draft cost at B = 3, then predict the speed-up measured at B = 2, 5 and 8."""
    rng = np.random.default_rng(7)
    plain = _lane("plain", 40.0, None, {"predicted_n": 200})
    (a,) = advise({"run": {}, "lanes": [plain, _simulated_lane("fit", 3, alpha, cost, rng)]})
    assert a.alpha == pytest.approx(alpha, abs=0.02)
    assert a.draft_cost == pytest.approx(cost, abs=0.02)
    for block in (2, 5, 8):
        held_out = _simulated_lane(f"B={block}", block, alpha, cost, rng)
        measured = held_out["summary"]["decode_tps"]["median"] / 40.0
        predicted = speedup(a.alpha or 0, block - 1, a.draft_cost or 0)
        assert predicted == pytest.approx(measured, rel=0.03), (block, predicted, measured)
        assert dict(a.curve)[block] == pytest.approx(predicted)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"lanes": [1]}, "lane #1: not a lanebench lane result"),
        ({"lanes": [{"name": "a", "samples": ["x"]}]}, "lane #1"),
        ({"lanes": [{"name": "a", "lane": {"draft": {"kind": "zzz"}}}]}, "lane #1"),
        ({"lanes": [{"name": "a", "status": "weird"}]}, "lane #1"),
        ({"run": {"job": {"n_in": "x"}}, "lanes": []}, "run.job.n_in: expected a non-negative integer"),
    ],
)
def test_a_hostile_run_document_is_one_clear_error(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        results_from_document(doc, "RESULTS")
