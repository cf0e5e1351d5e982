"""Dialect: what a build understands, read from real (and reconstructed) --version/--help text."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.engines.llamacpp.dialect import parse_dialect, probe
from lanebench.errors import BadInput

HELP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "help"
FAKES = Path(__file__).resolve().parents[1] / "fakes"

# What each recorded build must parse to. Every *.help fixture needs an entry here.
EXPECTED: dict[str, dict[str, object]] = {
    "b11434": {
        "speculative": "upstream",
        "can_mtp": True,
        "build": 11434,
        "commit": "unknown",
        "flash_attn_values": ("on", "off", "auto"),
        "spec_types_include": {"draft-mtp", "draft-simple", "draft-eagle3", "none"},
        "kv_types_include": {"f32", "f16", "bf16", "q8_0", "q4_0"},
        "kv_types_exclude": {"turbo3"},
        "present": {"--spec-draft-n-max", "--spec-draft-p-min", "--spec-type", "-md", "-ngld", "-fa"},
        "absent": {"--draft-max", "--draft", "--draft-n", "--draft-min", "--draft-block-size", "--mtp-head"},
    },
    "atomic": {
        "speculative": "atomic",
        "can_mtp": True,
        "build": 10340,
        "commit": "066cc29b",
        "flash_attn_values": ("on", "off", "auto"),
        "spec_types_include": {"mtp", "draft", "none"},
        "kv_types_include": {"f16", "q8_0", "q4_0", "turbo3"},
        "kv_types_exclude": set(),
        "present": {"--draft-block-size", "--mtp-head", "--draft-p-min", "--spec-type", "-md", "-ngld"},
        "absent": {"--spec-draft-n-max", "--spec-draft-p-min"},
    },
    "legacy-b5xxx": {
        "speculative": "legacy",
        "can_mtp": False,
        "build": 5600,
        "commit": "abcdef12",
        "flash_attn_values": (),
        "spec_types_include": set(),
        "kv_types_include": {"f16", "q8_0", "q4_0"},
        "kv_types_exclude": {"turbo3"},
        "present": {"--draft-max", "--draft-p-min", "-md", "-ngld", "-fa"},
        "absent": {"--spec-type", "--spec-draft-n-max", "--draft-block-size", "--mtp-head"},
    },
}

FIXTURES = sorted(p.stem for p in HELP_DIR.glob("*.help"))

# The family a fixture belongs to follows from its file name: b<build> / legacy-* / atomic*.
FAMILY_BY_PREFIX = {"legacy-": "legacy", "atomic": "atomic", "b": "upstream"}


def family(name: str) -> str | None:
    return next((fam for prefix, fam in FAMILY_BY_PREFIX.items() if name.startswith(prefix)), None)


def load(name: str):
    version = (HELP_DIR / f"{name}.version").read_text(encoding="utf-8")
    help_text = (HELP_DIR / f"{name}.help").read_text(encoding="utf-8")
    return parse_dialect(version, help_text)


def test_the_recorded_fixtures_are_there() -> None:
    assert set(EXPECTED) <= set(FIXTURES), f"missing in {HELP_DIR}: {set(EXPECTED) - set(FIXTURES)}"
    assert all(family(name) for name in FIXTURES), "name new fixtures b<build>, legacy-* or atomic*"


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_family_follows_its_name(name: str) -> None:
    d = load(name)
    assert d.speculative == family(name)
    assert d.build is not None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_dialect(name: str) -> None:
    want = EXPECTED[name]
    d = load(name)
    assert d.speculative == want["speculative"]
    assert d.can_mtp is want["can_mtp"]
    assert d.build == want["build"]
    assert d.commit == want["commit"]
    assert d.version_text.startswith("version: ")
    assert "\n" not in d.version_text
    assert d.flash_attn_values == want["flash_attn_values"]
    assert want["spec_types_include"] <= set(d.spec_types)
    assert want["kv_types_include"] <= set(d.kv_types)
    assert not (want["kv_types_exclude"] & set(d.kv_types))
    assert want["present"] <= d.flags, want["present"] - d.flags
    assert not (want["absent"] & d.flags), want["absent"] & d.flags


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_looks_like_a_server(name: str) -> None:
    d = load(name)
    assert {"--host", "--port", "-m", "--model", "--metrics", "-c", "-np", "-t", "-ngl"} <= d.flags
    assert {"-ctk", "-ctv", "--cache-type-k", "--cache-type-v"} <= d.flags
    # spec types and kv types are bare words, not pieces of the hint syntax
    for word in (*d.spec_types, *d.kv_types, *d.flash_attn_values):
        assert word and all(c.isalnum() or c in "-_" for c in word), word


def test_upstream_spec_types_in_order() -> None:
    d = load("b11434")
    assert d.spec_types[:4] == ("none", "draft-simple", "draft-eagle3", "draft-mtp")
    assert d.kv_types == ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def test_atomic_kv_types_wrap_onto_the_next_help_line() -> None:
    d = load("atomic")
    assert d.kv_types[-3:] == ("turbo2", "turbo3", "turbo4")


def test_to_dict_round_trips_the_facts() -> None:
    d = load("b11434").to_dict()
    assert d["speculative"] == "upstream"
    assert d["can_mtp"] is True
    assert d["build"] == 11434
    assert "draft-mtp" in d["spec_types"]
    assert d["flash_attn_values"] == ["on", "off", "auto"]


HELP_SNIPPET = """\
-m,    --model FNAME                    model path to load
--host HOST                             ip address to listen
--port PORT                             port to listen (default: 8080)
--draft, --draft-n, --draft-max N       the argument has been removed. use --spec-draft-n-max or
                                        --spec-draft-n-min
--spec-draft-n-max N                    number of tokens to draft for speculative decoding (default: 3)
--spec-type [none|draft-simple]         type of speculative decoding
-fa,   --flash-attn [on|off|auto]       set Flash Attention use
"""


def test_removed_flags_are_not_present() -> None:
    d = parse_dialect("version: 1 (build 7, commit abc)", HELP_SNIPPET)
    assert not {"--draft", "--draft-n", "--draft-max"} & d.flags
    assert {"-m", "--model", "--host", "--port", "--spec-draft-n-max", "-fa", "--flash-attn"} <= d.flags
    assert d.speculative == "upstream"
    assert d.spec_types == ("none", "draft-simple")
    assert d.can_mtp is False  # no draft-mtp among the spec types
    assert d.flash_attn_values == ("on", "off", "auto")
    assert (d.build, d.commit) == (7, "abc")


def test_no_speculative_flags_at_all() -> None:
    d = parse_dialect("", "-m,    --model FNAME                    model path\n")
    assert d.speculative == "none"
    assert d.can_mtp is False
    assert (d.version_text, d.build, d.commit) == ("", None, None)


def test_unrecognised_version_line_keeps_the_text() -> None:
    d = parse_dialect("llama-server custom fork 42\nmore\n", "")
    assert d.version_text == "llama-server custom fork 42"
    assert d.build is None and d.commit is None


# probe() runs the binary: cheap fakes only here (the real server is covered by e2e tests).


def test_probe_reads_a_binary_that_prints_the_upstream_help() -> None:
    d = probe(FAKES / "fake_llama_server_exits_on_start.sh")
    assert d.speculative == "upstream"
    assert d.build == 11434


@pytest.mark.parametrize("binary", [FAKES / "not_llama_server.sh", Path("/bin/true")], ids=["script", "true"])
def test_probe_refuses_what_is_not_llama_server(binary: Path) -> None:
    with pytest.raises(BadInput) as info:
        probe(binary)
    msg = str(info.value)
    assert msg == f"{binary}: does not look like llama-server (its --help lists no --model/--host/--port)"


def test_probe_of_a_file_that_cannot_run(tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("not executable")
    with pytest.raises(BadInput, match=r"cannot run it"):
        probe(binary)
