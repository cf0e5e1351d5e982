"""Sweeps (grid parsing, expansion, server grouping), tune (successive halving) and the median CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.errors import BadInput
from lanebench.lanes import Draft, LaneSpec
from lanebench.metrics import ci_within, median_ci
from lanebench.orchestration.grid import expand, parse_grid, server_key, speculative_fields
from lanebench.orchestration.plan import RunOptions
from lanebench.orchestration.tune import first_job, rank, tune_lanes
from lanebench.records import JobSpec, LaneResult, Stat

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

    def measure(ls: list[LaneSpec], opts: RunOptions) -> list[LaneResult]:
        calls.append(([x.name for x in ls], opts.job))
        return [result(x.name, speed[x.name]) for x in ls]

    final = JobSpec(n_in=1150, n_out=400, reps=3, aggregate=0)
    opts = RunOptions(job=final, out_dir=Path("/tmp"))
    report = tune_lanes(lanes, "decode", final, opts, measure)  # type: ignore[arg-type]
    assert report.best == "l4"
    assert calls[0][1] == first_job(final) and calls[0][1].n_out == 50
    assert calls[-1][1] == final and sorted(calls[-1][0]) == ["l3", "l4"]
    assert report.tokens < report.full_grid_tokens
    assert report.log[-1].startswith("stopped: 2 finalist(s)")
    assert calls[1][1].n_out == 100 and calls[1][1].n_in == 512  # each round doubles the job


def test_tune_rejects_unknown_goal() -> None:
    opts = RunOptions(job=JobSpec(), out_dir=Path("/tmp"))
    with pytest.raises(BadInput, match="--goal"):
        tune_lanes([lane()], "fastest", JobSpec(), opts, lambda ls, o: [])  # type: ignore[arg-type,misc]
