"""Sweeps (grid parsing, expansion, server grouping), tune (successive halving) and the median CI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from lanebench.analysis.metrics import ci_within, median_ci
from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.config.run import RunConfig
from lanebench.errors import BadInput
from lanebench.orchestration.grid import expand, parse_grid, server_key, speculative_fields
from lanebench.orchestration.tune import TIE_BREAK, TuneReport, first_job, rank, tune_lanes
from lanebench.records.lane import LaneResult
from lanebench.records.samples import Stat

M = Path("/m.gguf")


def lane(name: str = "a", **kw: object) -> LaneSpec:
    return LaneSpec(name=name, model=M, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "field", "values"),
    [
        ("draft.block_size=2,3,4", "draft.block_size", [2, 3, 4]),
        ("kv=f16,q8_0", "kv", ["f16", "q8_0"]),
        ("draft.p_min=0.5, 0.75", "draft.p_min", [0.5, 0.75]),
        ("slots=1", "slots", [1]),
    ],
)
def test_parse_grid(spec: str, field: str, values: list[object]) -> None:
    assert parse_grid(spec) == (field, values)


@pytest.mark.parametrize("spec", ["kv", "kv=", "=1,2", "nonsense=1", "name=a,b"])
def test_parse_grid_rejects(spec: str) -> None:
    with pytest.raises(BadInput, match="--grid"):
        parse_grid(spec)


def test_expand_is_a_cartesian_product_and_names_points() -> None:
    base = lane("d", draft=Draft(kind="model", block_size=3))
    out = expand([base], [parse_grid("draft.block_size=2,4"), parse_grid("kv=f16,q8_0")])
    assert [x.name for x in out] == [
        "d [draft.block_size=2, kv=f16]",
        "d [draft.block_size=2, kv=q8_0]",
        "d [draft.block_size=4, kv=f16]",
        "d [draft.block_size=4, kv=q8_0]",
    ]
    assert out[1].draft is not None and out[1].draft.block_size == 2 and out[1].kv == "q8_0"
    assert out[3].sweep == {"draft.block_size": 4, "kv": "q8_0"}


def test_expand_keeps_non_drafting_lanes_once_for_draft_fields() -> None:
    out = expand([lane("plain"), lane("d", draft=Draft(kind="model"))], [parse_grid("draft.block_size=2,3")])
    assert [x.name for x in out] == ["plain", "d [draft.block_size=2]", "d [draft.block_size=3]"]


def test_expand_validates_values_naming_the_field() -> None:
    with pytest.raises(BadInput, match=r"field 'draft.block_size'"):
        expand([lane("d", draft=Draft(kind="model"))], [parse_grid("draft.block_size=1")])


def test_server_key_ignores_request_fields_only() -> None:
    a = lane("a", draft=Draft(kind="model", block_size=2, p_min=0.5))
    b = lane("b", draft=Draft(kind="model", block_size=4))
    c = lane("c", draft=Draft(kind="model", block_size=4), kv="q8_0")
    assert server_key(a) == server_key(b)
    assert server_key(b) != server_key(c)
    assert speculative_fields(a) == {"n_max": 1, "p_min": 0.5}
    assert speculative_fields(lane("p")) == {}


def test_median_ci_order_statistics() -> None:
    assert median_ci([1, 2, 3, 4, 5]) is None  # too few for 95%
    assert median_ci([float(i) for i in range(6)]) == (0.0, 5.0)
    assert median_ci([float(i) for i in range(9)]) == (1.0, 7.0)
    tight = [100.0, 100.5, 99.5, 100.2, 99.8, 100.1, 99.9]
    assert ci_within(tight, 0.01)
    assert not ci_within(tight, 0.001)
    assert not ci_within(tight[:5], 0.5)


def result(name: str, decode: float | None, status: str = "ok") -> LaneResult:
    r = LaneResult(name=name, lane=LaneSpec(name=name), status=status)  # type: ignore[arg-type]
    if decode is not None:
        r.summary["decode_tps"] = Stat(decode, decode, decode, 1)
    return r


def test_rank_puts_failures_last_and_respects_direction() -> None:
    ranked = rank([result("slow", 10), result("dead", None, "failed"), result("fast", 30)], "decode")
    assert [r.name for r, _ in ranked] == ["fast", "slow", "dead"]


def test_tune_halves_then_confirms_finalists() -> None:
    lanes = [lane(f"l{i}") for i in range(6)]
    speed = {f"l{i}": float(10 + i) for i in range(6)}
    speed["l5"] = 1.0  # the best name by index is the slowest: ranking must use figures
    calls: list[tuple[list[str], JobSpec]] = []

    def measure(ls: list[LaneSpec], opts: RunConfig) -> list[LaneResult]:
        calls.append(([x.name for x in ls], opts.job))
        return [result(x.name, speed[x.name]) for x in ls]

    final = JobSpec(n_in=1150, n_out=400, reps=3, aggregate=0)
    opts = RunConfig(out_dir=Path("/tmp")).with_job(final)
    report = tune_lanes(lanes, "decode", opts, measure)  # type: ignore[arg-type]
    assert report.best == "l4"
    assert calls[0][1] == first_job(final) and calls[0][1].n_out == 50
    assert calls[-1][1] == final and sorted(calls[-1][0]) == ["l3", "l4"]
    assert report.tokens < report.full_grid_tokens
    assert report.log[-1].startswith("stopped: 2 finalist(s)")
    assert calls[1][1].n_out == 100 and calls[1][1].n_in == 512  # each round doubles the job


def test_tune_rejects_unknown_goal() -> None:
    opts = RunConfig(out_dir=Path("/tmp")).with_job(JobSpec())
    with pytest.raises(BadInput, match="--goal"):
        tune_lanes([lane()], "fastest", opts, lambda ls, o: [])  # type: ignore[arg-type,misc]


def spread(name: str, lo: float, mid: float, hi: float, spec: LaneSpec | None = None) -> LaneResult:
    """A fake measured lane: decode median ``mid`` over 3 reps from ``lo`` to ``hi``."""
    r = LaneResult(name=name, lane=spec or LaneSpec(name=name))
    r.summary["decode_tps"] = Stat(mid, lo, hi, 3)
    return r


def tune_grid(
    figures: dict[str, tuple[float, float, float]], base: LaneSpec | None = None, min_margin: float = 0.0
) -> TuneReport:
    """tune over ``kv=...`` grid lanes of ``base`` with fake measurements: kv value -> (lo, mid, hi)."""
    lanes = expand([base or lane("t")], [parse_grid("kv=" + ",".join(figures))])
    specs = {x.name: x for x in lanes}

    def measure(ls: list[LaneSpec], opts: RunConfig) -> list[LaneResult]:
        return [spread(x.name, *figures[x.kv], spec=specs[x.name]) for x in ls]

    final = JobSpec(n_in=64, n_out=64, reps=3, aggregate=0)
    opts = RunConfig(out_dir=Path("/tmp")).with_job(final)
    return tune_lanes(lanes, "decode", opts, measure, min_margin=min_margin)  # type: ignore[arg-type]


def test_tune_finalists_inside_the_noise_are_a_tie_said_everywhere() -> None:
    """The issue's run: Q8_0 KV 79.41 against F16 KV 78.62 tok/s, spreads overlapping."""
    report = tune_grid({"f16": (77.9, 78.62, 80.1), "q8_0": (78.3, 79.41, 81.0)})
    assert report.best == "t [kv=q8_0]" and report.best_values == {"kv": "q8_0"}
    assert report.decided_by == "tie-break" and report.tied == ["t [kv=f16]"]
    assert report.decision.startswith("no measurable difference between t [kv=q8_0] and t [kv=f16] (")
    assert "min–max ranges overlap, 3 vs 3 reps" in report.decision
    assert f"decision: {report.decision}" in report.log
    assert f"tie-break ({TIE_BREAK}): t [kv=q8_0]" in report.log
    assert "  tied     t [kv=q8_0]: decode_tps = 79.41 (78.30–81.00, 3 reps)" in report.log
    assert "  tied     t [kv=f16]: decode_tps = 78.62 (77.90–80.10, 3 reps)" in report.log
    doc = report.to_dict()
    assert doc["decided_by"] == "tie-break" and doc["tie_break"] == TIE_BREAK
    assert doc["standing"]["verdicts"]["t [kv=f16]"]["outcome"] == "no measurable difference"
    line = report.best_line()
    assert line.startswith(
        f"best lane: t [kv=q8_0] (tie-break: {TIE_BREAK}); no measurable difference between"
    )


def test_tune_names_a_winner_beyond_the_noise_with_its_margin() -> None:
    report = tune_grid({"f16": (70.0, 71.0, 72.0), "q8_0": (79.0, 80.0, 81.0)})
    assert report.best == "t [kv=q8_0]" and report.decided_by == "measured" and report.tied == []
    assert report.decision == (
        "better than t [kv=f16] (t [kv=f16] / t [kv=q8_0] = 0.887 (0.864–0.911); "
        "min–max ranges apart, 3 vs 3 reps, p = 0.10 by chance)"
    )
    assert "  best     t [kv=q8_0]: decode_tps = 80.00 (79.00–81.00, 3 reps)" in report.log
    assert report.best_line() == f"best lane: t [kv=q8_0]; {report.decision}"


def test_tune_min_margin_ties_a_separation_smaller_than_it() -> None:
    figures = {"f16": (79.0, 79.1, 79.2), "q8_0": (80.0, 80.1, 80.2)}  # apart, but by 1.3%
    assert tune_grid(figures).decided_by == "measured"
    report = tune_grid(figures, min_margin=0.05)
    assert report.decided_by == "tie-break" and "< the 5% minimum margin" in report.decision
    with pytest.raises(BadInput, match="--min-margin"):
        tune_grid(figures, min_margin=1.5)


def test_tune_marks_an_emulated_best_lane_in_the_log_json_and_last_line() -> None:
    base = lane("e", draft=Draft(kind="model", block_size=2, emulate=[0.9]))
    report = tune_grid({"f16": (70.0, 71.0, 72.0), "q8_0": (79.0, 80.0, 81.0)}, base)
    assert report.best == "e [kv=q8_0]" and report.best_emulated
    assert report.best_line().startswith(
        "best lane: e [kv=q8_0] [emulated]; better than e [kv=f16] [emulated]"
    )
    assert any(line.startswith("  best     e [kv=q8_0] [emulated]: ") for line in report.log)
    assert all(row["emulated"] for rnd in report.rounds for row in rnd["ranked"])


def test_tune_cli_last_line_keeps_the_grid_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``best lane: t`` was printed through rich markup, which took ``[kv=q8_0]`` for a style tag."""
    from typer.testing import CliRunner

    from lanebench.cli import sweep_cmd
    from lanebench.cli.main import app

    figures = {"f16": (77.9, 78.62, 80.1), "q8_0": (78.3, 79.41, 81.0)}

    def fake_measure(ls: list[LaneSpec], opts: RunConfig, **_: object) -> SimpleNamespace:
        """A FAKE of measure_with_progress: figures per kv type, no server."""
        return SimpleNamespace(results=[spread(x.name, *figures[x.kv], spec=x) for x in ls])

    monkeypatch.setattr(sweep_cmd, "measure_with_progress", fake_measure)
    f = tmp_path / "t.toml"
    f.write_text('[[lane]]\nname = "t"\nmodel = "/m.gguf"\n')
    out = CliRunner().invoke(app, ["tune", str(f), "--grid", "kv=f16,q8_0", "--no-db", "--n-out", "64"])
    assert out.exit_code == 0, out.output
    last = out.output.strip().splitlines()[-1]
    assert last.startswith("best lane: t [kv=q8_0] (tie-break: "), out.output
    assert "no measurable difference between t [kv=q8_0] and t [kv=f16]" in last


def enveloped(name: str, cells: dict[tuple[int, int], tuple[float, float, float]]) -> LaneResult:
    """A FAKE measured lane with an envelope: (depth, concurrency) -> per-stream decode (lo, mid, hi);
    its standard summary says the opposite of its deepest cell, so reading the wrong one shows."""
    from lanebench.records.envelope import CellSummary

    r = LaneResult(name=name, lane=LaneSpec(name=name))
    r.envelope = [
        CellSummary(
            depth=d, concurrency=c, decode=Stat(mid, lo, hi, 3), aggregate=Stat(c * mid, c * lo, c * hi, 3)
        )
        for (d, c), (lo, mid, hi) in cells.items()
    ]
    r.summary["decode_tps"] = Stat(1000.0 - cells[max(cells)][1], 0, 2000, 3)
    return r


def test_tune_with_an_envelope_judges_at_the_deepest_widest_cell() -> None:
    """MTP leads at depth 0 but plain leads at 32k: tune for a 32k context picks plain."""
    figures = {
        "mtp": {(0, 1): (260.0, 263.0, 266.0), (32768, 1): (150.0, 152.0, 154.0)},
        "plain": {(0, 1): (190.0, 192.0, 194.0), (32768, 1): (170.0, 172.0, 174.0)},
    }

    def measure(ls: list[LaneSpec], opts: RunConfig) -> list[LaneResult]:
        return [enveloped(x.name, figures[x.name]) for x in ls]

    final = JobSpec(n_in=64, n_out=64, reps=3, aggregate=0, depths=[0, 32768], concurrency=[1])
    opts = RunConfig(out_dir=Path("/tmp")).with_job(final)
    report = tune_lanes([lane("mtp"), lane("plain")], "decode", opts, measure)  # type: ignore[arg-type]
    assert report.best == "plain" and report.decided_by == "measured", report.log
    assert (
        report.log[0]
        == "judged at the envelope's operating point: depth 32,768, 1 stream(s) (per-stream decode)"
    )
    assert any("plain: decode_tps = 172.00 (170.00–174.00, 3 reps)" in line for line in report.log), (
        report.log
    )


def test_tune_refuses_a_goal_the_envelope_does_not_measure() -> None:
    from lanebench.orchestration.tune import tune_config

    config = RunConfig(out_dir=Path("/tmp"), depth=[0, 4096])
    with pytest.raises(BadInput, match=r"^--goal: 'normalized-wall' is not a figure of the envelope's cells"):
        tune_config(config, "normalized-wall")
    assert tune_config(config, "aggregate").job.depths == [0, 4096]
