"""The attribution experiment's suspects: which apply, read from a recorded --help and the lane,
and the one change each variant makes to the server's command line."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from lanebench.config.lanes import LaneSpec
from lanebench.engines.llamacpp.argv import build_argv
from lanebench.engines.llamacpp.dialect import Dialect, parse_dialect
from lanebench.engines.llamacpp.suspects import SUSPECTS, Suspect, applicable, prompt_cache_mib, register

HELP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "help"
BIN, MODEL = Path("/opt/llama/bin/llama-server"), Path("/models/m.gguf")


@cache
def dialect(name: str) -> Dialect:
    return parse_dialect((HELP_DIR / f"{name}.version").read_text(), (HELP_DIR / f"{name}.help").read_text())


def names(lane: LaneSpec, build: str = "b11434") -> tuple[list[str], dict[str, str]]:
    tested, skipped = applicable(dialect(build), lane)
    return [s.name for s in tested], dict(skipped)


def test_b11434_defaults_put_four_suspects_on_trial() -> None:
    tested, skipped = names(LaneSpec(name="L"))
    assert tested == ["prompt_cache", "idle_slots", "ctx_checkpoints", "samplers"]
    assert skipped == {"cache_reuse": "the lane does not enable it (--cache-reuse 0)"}
    assert prompt_cache_mib(dialect("b11434"), LaneSpec(name="L")) == 8192  # the help's default


@pytest.mark.parametrize(
    ("lane", "skipped"),
    [
        (LaneSpec(name="L", cache_ram=0), {"prompt_cache", "idle_slots"}),
        (LaneSpec(name="L", extra_args=["--cache-ram", "0"]), {"prompt_cache", "idle_slots"}),
        (LaneSpec(name="L", extra_args=["-ctxcp", "0"]), {"ctx_checkpoints"}),
        (LaneSpec(name="L", extra_args=["--no-cache-idle-slots"]), {"idle_slots"}),
        (LaneSpec(name="L", extra_args=["--samplers", "temperature"]), {"samplers"}),
    ],
)
def test_a_suspect_the_lane_already_switched_off_is_skipped(lane: LaneSpec, skipped: set[str]) -> None:
    tested, why = names(lane)
    assert skipped <= set(why) and not skipped & set(tested)


def test_cache_reuse_is_tested_only_when_the_lane_enables_it() -> None:
    tested, _ = names(LaneSpec(name="L", extra_args=["--cache-reuse", "256"]))
    assert "cache_reuse" in tested


def test_a_build_without_the_flags_skips_them_with_the_reason() -> None:
    tested, skipped = names(LaneSpec(name="L"), "legacy-b5xxx")
    assert "prompt_cache" not in tested
    assert skipped["prompt_cache"] == "this build has no --cache-ram"


@pytest.mark.parametrize(
    ("suspect", "lane", "change", "gone"),
    [
        ("prompt_cache", LaneSpec(name="L"), ["-cram", "0"], []),
        ("prompt_cache", LaneSpec(name="L", cache_ram=3000), ["-cram", "0"], ["3000"]),
        ("prompt_cache", LaneSpec(name="L", extra_args=["--cache-ram", "1024"]), ["-cram", "0"], ["1024"]),
        ("idle_slots", LaneSpec(name="L", extra_args=["--cache-idle-slots"]), ["--no-cache-idle-slots"],
         ["--cache-idle-slots"]),
        ("ctx_checkpoints", LaneSpec(name="L", extra_args=["--swa-checkpoints", "8"]), ["-ctxcp", "0"],
         ["8"]),
        ("cache_reuse", LaneSpec(name="L", extra_args=["--cache-reuse", "256"]), ["--cache-reuse", "0"],
         ["256"]),
        ("samplers", LaneSpec(name="L", extra_args=["--samplers", "top_k;temperature", "-ub", "64"]),
         ["--samplers", "temperature"], ["top_k;temperature"]),
    ],
)  # fmt: skip
def test_the_variant_changes_one_thing_and_the_server_sees_it_last(
    suspect: str, lane: LaneSpec, change: list[str], gone: list[str]
) -> None:
    d = dialect("b11434")
    variant = SUSPECTS[suspect].variant(d, lane)
    argv = build_argv(variant.model_copy(update={"ctx": 4096}), d, BIN, MODEL, 1234)
    assert argv[-len(change) :] == change
    assert not set(gone) & set(argv)
    control = build_argv(lane.model_copy(update={"ctx": 4096}), d, BIN, MODEL, 1234)
    kept = [a for a in control if a not in gone and a not in ("-cram", "--cache-ram", "--cache-idle-slots")]
    kept = [a for a in kept if a not in ("--swa-checkpoints", "--cache-reuse", "--samplers")]
    assert [a for a in argv[: -len(change)]] == kept  # nothing else changed


def test_a_suspect_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register(SUSPECTS["samplers"])
    assert isinstance(SUSPECTS["samplers"], Suspect)
