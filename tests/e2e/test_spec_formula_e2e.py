"""The speculative model against a real llama-server at chosen acceptance profiles.

b11434's ``--spec-synth-rates P0,P1,...`` makes the server accept drafted tokens at random with
unconditional per-position probabilities (``tools/server/server-context.cpp``: each position is
accepted with P_i / P_(i-1), independently, until the first rejection). With geometric rates
P_i = α^(i+1), that is exactly the process ``lanebench.analysis.specmodel`` models, so at middling α
(0.3 / 0.6 / 0.9, where formulas that only agree at α = 1 differ) the model's tokens per step and
acceptance must match what lanebench measures from the server's ``/metrics``.

Tolerance: 4 standard errors of the measured mean, the standard error computed from the number
of verification steps the server counted and the spread of tokens per step under the process
(not under the formula being tested). The same data must reject plausible wrong formulas.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lanebench.analysis.specmodel import expected_tokens_per_step

# ~3,000 generated tokens with a self-draft: about 90 s on 2 idle cores; generous for busy ones
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

BLOCK = 4  # the target verifies B tokens a round; the draft proposes n = B - 1
N_DRAFT = BLOCK - 1
ALPHAS = (0.3, 0.6, 0.9)
N_OUT, REPS = 256, 4


def rates(alpha: float) -> str:
    """The lane's ``draft.emulate`` list (TOML) for geometric rates alpha^(i+1)."""
    return "[" + ", ".join(f"{alpha ** (i + 1):.6f}" for i in range(N_DRAFT)) + "]"


def step_sd(alpha: float, n: int) -> float:
    """Standard deviation of tokens per step: 1 + K, P(K >= k) = alpha^k for k <= n."""
    p = [alpha**k * (1 - alpha) for k in range(n)] + [alpha**n]
    mean = sum(k * q for k, q in enumerate(p))
    return math.sqrt(sum((k - mean) ** 2 * q for k, q in enumerate(p)))


@pytest.fixture(scope="module")
def measured(
    tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path
) -> dict[float, Any]:
    d = tmp_path_factory.mktemp("specsynth")
    lanes = "\n".join(
        f"""
[[lane]]
name = "alpha {a}"
draft = {{ kind = "model", block_size = {BLOCK}, p_min = 0.0, emulate = {rates(a)} }}
"""
        for a in ALPHAS
    )
    lanes += """
[[lane]]
name = "flat 0.5"
draft = { kind = "model", block_size = 3, p_min = 0.0, emulate = [0.5, 0.5] }
"""
    (d / "lanes.toml").write_text(
        f'[defaults]\nmodel = "{gemma_270m}"\nserver_bin = "{server_bin}"\nthreads = 2\nslots = 1\n{lanes}'
    )
    job = ["--n-in", "32", "--n-out", str(N_OUT), "--reps", str(REPS), "--warmup", "0", "--aggregate", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "lanebench", "run", str(d / "lanes.toml"), *job, "--no-db",
         "--json", str(d / "out.json"), "--markdown", str(d / "out.md"), "--out-dir", str(d / "logs")],
        capture_output=True, text=True, timeout=1700,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((d / "out.json").read_text())
    lanes = {
        float(lane["name"].split()[1]) if "alpha" in lane["name"] else lane["name"]: lane
        for lane in doc["lanes"]
    }
    return {**lanes, "doc": doc, "markdown": (d / "out.md").read_text()}


def observed(lane: dict[str, Any]) -> tuple[float, float, float]:
    """Tokens per step, acceptance (accepted / drafted) and verification steps, from /metrics."""
    delta = lane["metrics_delta"]
    steps = delta["spec_decode_num_drafts_total"]
    accepted = delta["spec_decode_num_accepted_tokens_total"]
    drafted = delta["spec_decode_num_draft_tokens_total"]
    assert steps > 100 and drafted > 0, delta
    assert lane["summary"]["mean_accepted_length"]["median"] == pytest.approx(1 + accepted / steps)
    return 1 + accepted / steps, accepted / drafted, steps


def lanes_of(measured: dict[Any, Any]) -> list[dict[str, Any]]:
    return [v for k, v in measured.items() if k not in ("doc", "markdown")]


def geometric(measured: dict[Any, Any]) -> dict[float, Any]:
    return {k: v for k, v in measured.items() if isinstance(k, float)}


def fits(formula: Callable[[float, int], float], measured: dict[Any, Any]) -> bool:
    """True if ``formula`` predicts every profile's tokens per step within 4 standard errors."""
    for alpha, lane in geometric(measured).items():
        tokens, _, steps = observed(lane)
        if abs(formula(alpha, N_DRAFT) - tokens) > 4 * step_sd(alpha, N_DRAFT) / math.sqrt(steps):
            return False
    return True


def test_tokens_per_step_and_acceptance_match_the_model(measured: dict[Any, Any]) -> None:
    for alpha, lane in geometric(measured).items():
        tokens, acceptance, steps = observed(lane)
        tol = 4 * step_sd(alpha, N_DRAFT) / math.sqrt(steps)
        predicted = expected_tokens_per_step(alpha, N_DRAFT)
        assert abs(predicted - tokens) <= tol, (alpha, predicted, tokens, tol)
        # acceptance = accepted / drafted = (tokens per step - 1) / n when every draft has n tokens
        assert abs((predicted - 1) / N_DRAFT - acceptance) <= tol / N_DRAFT + 0.01, (alpha, acceptance)
        # per position i, the share of steps that accepted it is alpha^(i+1)
        for i, share in enumerate(lane["per_position"][:N_DRAFT]):
            p = alpha ** (i + 1)
            assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / steps) + 0.01, (alpha, i, share)


def _acceptance_taken_for_alpha(a: float, n: int) -> float:
    """The formula fed accepted / drafted instead of the per-token α (the old test's mistake)."""
    return expected_tokens_per_step((expected_tokens_per_step(a, n) - 1) / n, n)


WRONG_FORMULAS: dict[str, Callable[[float, int], float]] = {
    "linear 1 + n·α": lambda a, n: 1 + n * a,
    "one position short (1 - α^n) / (1 - α)": lambda a, n: (1 - a**n) / (1 - a),
    "α^n·(n + 1), right only at α = 1": lambda a, n: a**n * (n + 1),
    "accepted/drafted taken for α": _acceptance_taken_for_alpha,
}


@pytest.mark.parametrize("name", list(WRONG_FORMULAS))
def test_the_same_data_reject_a_wrong_formula(measured: dict[float, Any], name: str) -> None:
    """Each wrong formula lies >= 8 standard errors from the truth at some profile (so rejecting
    it is not luck: the right one passes within 4), and the data reject it."""
    wrong = WRONG_FORMULAS[name]
    separation = max(
        abs(wrong(a, N_DRAFT) - expected_tokens_per_step(a, N_DRAFT))
        / (step_sd(a, N_DRAFT) / math.sqrt(observed(lane)[2]))
        for a, lane in geometric(measured).items()
    )
    assert separation >= 8, f"{name}: only {separation:.1f} standard errors from the truth at these sizes"
    assert fits(expected_tokens_per_step, measured)
    assert not fits(wrong, measured), f"{name} would have passed: the test is too loose"


def test_a_flat_emulated_profile_gives_its_acceptance(measured: dict[Any, Any]) -> None:
    """``emulate = [0.5, 0.5]`` at B = 3: acceptance 50% (±5 points, or 4 standard errors when the
    run's own count of steps makes those wider), per position 0.5 and 0.5."""
    lane = measured["flat 0.5"]
    delta = lane["metrics_delta"]
    steps = delta["spec_decode_num_drafts_total"]
    acceptance = delta["spec_decode_num_accepted_tokens_total"] / delta["spec_decode_num_draft_tokens_total"]
    # accepted per step is 0 or 2 with equal odds (position 2 follows position 1): sd 0.5 of the share
    assert abs(acceptance - 0.5) <= max(0.05, 4 * 0.5 / math.sqrt(steps)), (acceptance, steps)
    for i, share in enumerate(lane["per_position"][:2]):
        assert abs(share - 0.5) <= 4 * 0.5 / math.sqrt(steps) + 0.01, (i, share, steps)


def test_emulated_lanes_carry_the_flag_and_are_marked(
    measured: dict[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flag reaches the server, and the run's own tables and the report's plots of these
    lanes say [emulated] wherever a figure of theirs is shown."""
    from lanebench.records.lane import results_from_document
    from lanebench.report import plots

    names = [lane["name"] for lane in lanes_of(measured)]
    for lane in lanes_of(measured):
        assert "--spec-synth-rates" in lane["argv"]
        assert lane["lane"]["draft"]["emulate"]
    rows = [line for line in measured["markdown"].splitlines() if line.startswith("| ")]
    for name in names:
        marked = [r for r in rows if r.startswith(f"| {name} [emulated] |")]
        assert len(marked) >= 2, (name, rows)  # Latest Measured Numbers and Draft Acceptance
        assert not [r for r in rows if r.startswith(f"| {name} |")], name  # never unmarked
    assert "emulated acceptance (the build's --spec-synth-*)" in measured["markdown"]
    figs: list[Any] = []
    monkeypatch.setattr(plots, "_png", lambda fig: figs.append(fig) or b"png")
    results = results_from_document(measured["doc"], "out.json").lanes
    plots.lane_bars(results, "run")
    plots.prefill_decode(results)
    bars, scatter = figs
    assert [t.get_text() for t in bars.axes[0].get_yticklabels()] == [f"{n} [emulated]" for n in names]
    assert {bar.get_hatch() for bar in bars.axes[0].patches} == {"//"}
    assert sorted(t.get_text() for t in scatter.axes[0].texts) == sorted(f"{n} [emulated]" for n in names)
    for fig in figs:
        fig.clf()
