"""Speculative-flag dialects: one registered class per family, chosen from a build's --help."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.llamacpp import specflags
from lanebench.engines.llamacpp.argv import build_argv
from lanebench.engines.llamacpp.dialect import Dialect, parse_dialect
from lanebench.engines.llamacpp.specflags import SpecFlags

HELP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "help"


def _fixture(name: str) -> Dialect:
    return parse_dialect(
        (HELP_DIR / f"{name}.version").read_text(encoding="utf-8"),
        (HELP_DIR / f"{name}.help").read_text(encoding="utf-8"),
    )


@pytest.mark.parametrize(
    ("fixture", "family", "p_min"),
    [
        ("b11434", "upstream", "--spec-draft-p-min"),
        ("atomic", "atomic", "--draft-p-min"),
        ("legacy-b5xxx", "legacy", "--draft-p-min"),
    ],
)
def test_each_recorded_build_gets_its_family_and_p_min_flag(fixture: str, family: str, p_min: str) -> None:
    d = _fixture(fixture)
    assert d.spec_flags is specflags.spec_flags(family)
    assert d.spec_flags.p_min_flag == p_min
    args = build_argv(LaneSpec(name="L", draft=Draft(kind="model", p_min=0.5)), d, Path("s"), Path("m"), 1)
    assert args[args.index(p_min) + 1] == "0.5"


def test_a_second_family_of_one_name_is_refused_and_a_lookup_lists_them() -> None:
    with pytest.raises(ValueError, match=r"'legacy' registered twice \(Legacy and Again\)"):

        class Again(SpecFlags):
            name = "legacy"

    assert type(specflags.spec_flags("legacy")).__name__ == "Legacy"
    with pytest.raises(KeyError, match="'nope' is not one of upstream, atomic, legacy, none"):
        specflags.spec_flags("nope")


class _Toy(SpecFlags):
    """A fork that spells a draft ``--toy-draft PATH --toy-block B`` (defined without a name:
    not registered until the fixture names it)."""

    p_min_flag = "--toy-p-min"
    precedence = 5

    def speaks(self, d: Dialect) -> bool:
        return d.has("--toy-block")

    def draft_flags(self, lane: LaneSpec, draft: Draft, path: Path, d: Dialect) -> list[str]:
        return ["--toy-draft", str(path), "--toy-block", str(draft.block_size)]


@pytest.fixture
def toy() -> Iterator[type[SpecFlags]]:
    class Toy(_Toy):  # defining it registers it
        name = "toy"

    yield Toy
    specflags.unregister("toy")


def test_a_new_family_is_one_class(toy: type[SpecFlags]) -> None:
    flags = {"-m", "--host", "--port", "-np", "--metrics", "-ctk", "-ctv", "--toy-block", "--toy-p-min"}
    d = Dialect("version: toy", None, None, frozenset(flags))
    assert d.speculative == "toy" and d.can_mtp is False
    lane = LaneSpec(name="L", draft=Draft(kind="model", path=Path("d.gguf"), block_size=4, p_min=0.6))
    args = build_argv(lane, d, Path("s"), Path("m"), 1)
    i = args.index("--toy-draft")
    assert args[i:] == ["--toy-draft", "d.gguf", "--toy-block", "4", "--toy-p-min", "0.6"]
