"""advise by emulation: lanes it builds, and the cost it fits, on a simulated engine (not the
formula): each round drafts n = B - 1 tokens and accepts position i with probability α given
the one before, then the target adds its own token; a round costs 1 + n·c plain-token times."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.config.run import RunConfig
from lanebench.errors import BadInput
from lanebench.orchestration.emulated_advice import (
    advise_by_emulation,
    emulated_at,
    geometric_rates,
    pick_lane,
    plain_of,
)
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord, Stat

PLAIN_TPS, COST = 40.0, 0.3
LANE = LaneSpec(
    name="mtp", model=Path("/m/main.gguf"), draft=Draft(kind="mtp", path=Path("/m/head.gguf"), block_size=3)
)


def simulate(lane: LaneSpec, rng: np.random.Generator) -> LaneResult:
    """One lane measured on the simulated engine (20,000 rounds when it drafts)."""
    if lane.draft is None:
        tps, timings = PLAIN_TPS, {"predicted_n": 200, "predicted_per_second": PLAIN_TPS}
    else:
        assert lane.draft.emulate is not None
        n, rounds = lane.draft.block_size - 1, 20_000
        alpha = lane.draft.emulate[0]
        runs = np.minimum(rng.geometric(1 - alpha, size=rounds) - 1, n) if alpha < 1 else np.full(rounds, n)
        accepted = int(runs.sum())
        gen = rounds + accepted
        tps = PLAIN_TPS * (gen / rounds) / (1 + n * COST)
        timings = {
            "predicted_n": gen,
            "predicted_per_second": tps,
            "draft_n": rounds * n,
            "draft_n_accepted": accepted,
        }
    sample = RequestRecord(kind="single", rep=0, n_in=64, n_out=200, timings=timings)
    return LaneResult(
        name=lane.name, lane=lane, samples=[sample], summary={"decode_tps": Stat(tps, tps, tps, 1)}
    )


def test_lanes_it_builds() -> None:
    assert geometric_rates(0.8, 3) == [0.8, 0.64, 0.512]
    emu = emulated_at(LANE, 0.8)
    assert emu.draft is not None and emu.draft.emulate == [0.8, 0.64] and emu.draft.p_min == 0.0
    assert emu.emulated and emu.model == LANE.model and emu.kv == LANE.kv
    plain = plain_of(LANE)
    assert plain.draft is None and plain.model == LANE.model and not plain.emulated


def test_pick_lane_names_what_is_wrong() -> None:
    plain = LaneSpec(name="plain")
    assert pick_lane([plain, LANE], None) is LANE
    with pytest.raises(BadInput, match="no draft"):
        pick_lane([plain, LANE], "plain")
    with pytest.raises(BadInput, match="drafting lanes: mtp"):
        pick_lane([plain, LANE], "nope")
    with pytest.raises(BadInput, match="no lane with a draft"):
        pick_lane([plain], None)


def test_the_cost_fitted_at_one_profile_predicts_the_others() -> None:
    rng = np.random.default_rng(3)
    seen: list[str] = []

    def measure(lanes: Sequence[LaneSpec], opts: RunConfig) -> list[LaneResult]:
        seen.extend(lane.name for lane in lanes)
        return [simulate(lane, rng) for lane in lanes]

    opts = RunConfig(out_dir=Path("/tmp")).with_job(JobSpec(n_in=64, n_out=200))
    adv = advise_by_emulation(LANE, opts, measure, profile=0.8, check=(0.5, 0.95))
    assert seen == ["mtp [plain]", "mtp [emulated α=0.8]", "mtp [emulated α=0.5]", "mtp [emulated α=0.95]"]
    assert adv.fitted is not None and adv.fitted.draft_cost == pytest.approx(COST, abs=0.02)
    for check in adv.checks:
        assert check.error is not None and abs(check.error) < 0.02, check
    # the grid: B = 1 would be plain; at α = 0.95 and c = 0.3, B = 3 beats B = 2
    assert adv.grid[3][0.95] > adv.grid[2][0.95] > PLAIN_TPS


def test_a_failed_lane_is_a_note_not_a_crash() -> None:
    def measure(lanes: Sequence[LaneSpec], opts: RunConfig) -> list[LaneResult]:
        return [LaneResult(name=lane.name, lane=lane, status="failed", error="engine died") for lane in lanes]  # type: ignore[arg-type]

    adv = advise_by_emulation(LANE, RunConfig(out_dir=Path("/tmp")).with_job(JobSpec()), measure)
    assert adv.fitted is None and adv.grid == {}
    assert any("engine died" in n for n in adv.notes)


def test_profiles_outside_0_1_are_refused() -> None:
    with pytest.raises(BadInput, match="between 0 and 1"):
        advise_by_emulation(
            LANE, RunConfig(out_dir=Path("/tmp")).with_job(JobSpec()), lambda ls, o: [], check=(1.5,)
        )


def test_acceptance_at_a_depth_comes_from_the_one_stream_turns_there() -> None:
    """advise --depth D measures the envelope's one-stream cell at D: its turns carry the drafts
    (kind "cell"); the two-stream turns of the same run are left out."""
    from lanebench.analysis.specmodel import advise_lane
    from lanebench.records.lane import LaneResult
    from lanebench.records.samples import RequestRecord

    spec = LaneSpec(
        name="mtp", model=Path("/m.gguf"), draft=Draft(kind="mtp", path=Path("/h.gguf"), block_size=3)
    )
    lane = LaneResult(name="mtp", lane=spec)
    for conc, accepted in ((1, 30), (2, 2)):
        for i in range(conc):
            rec = RequestRecord(
                kind="cell", rep=0, n_in=8, n_out=64, depth=4096, concurrency=conc, stream_index=i
            )
            rec.timings = {"predicted_n": 64, "draft_n": 40, "draft_n_accepted": accepted}
            lane.samples.append(rec)
    adv = advise_lane(lane, [lane])
    assert adv.acceptance == 30 / 40


def test_advise_fits_at_one_depth(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lanebench.cli.main import app

    lanes = tmp_path / "l.toml"
    lanes.write_text('[[lane]]\nname = "a"\nmodel = "/m.gguf"\ndraft = { kind = "mtp", path = "/h.gguf" }\n')
    out = CliRunner().invoke(app, ["advise", str(lanes), "--depth", "0,4096", "--no-db"])
    assert out.exit_code != 0
    assert "--depth: advise fits at one depth, got 0,4096" in out.output + str(out.exception)
