"""Lanes file validation: defaults, paths, and one exact line per problem naming file, lane, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.config.lanesfile import load_lanes, parse_lanes
from lanebench.errors import BadInput


def write(tmp_path: Path, text: str, name: str = "lanes.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(BadInput) as info:
        load_lanes(path)
    return str(info.value).splitlines()


def test_defaults_merge_and_lane_value_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
kv = "q8_0"
flash_attn = "on"
slots = 4
threads = 2

[[lane]]
name = "inherits"

[[lane]]
name = "overrides"
kv = "f16"
slots = 1
""",
    )
    first, second = load_lanes(path)
    assert (first.name, first.kv, first.flash_attn, first.slots, first.threads) == (
        "inherits",
        "q8_0",
        "on",
        4,
        2,
    )
    assert (second.name, second.kv, second.flash_attn, second.slots, second.threads) == (
        "overrides",
        "f16",
        "on",
        1,
        2,
    )


def test_field_defaults_without_defaults_table(tmp_path: Path) -> None:
    (lane,) = load_lanes(write(tmp_path, '[[lane]]\nname = "bare"\n'))
    assert lane == LaneSpec(name="bare")
    assert (lane.kv, lane.flash_attn, lane.slots, lane.model, lane.draft) == ("f16", "auto", 2, None, None)


def test_relative_paths_resolve_against_the_lanes_file_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    path = write(
        sub,
        """
[[lane]]
name = "rel"
model = "models/main.gguf"
server_bin = "../bin/llama-server"
draft = { kind = "model", path = "models/draft.gguf" }
""",
    )
    (lane,) = load_lanes(path)
    assert lane.model == (sub / "models/main.gguf").resolve()
    assert lane.server_bin == (tmp_path / "bin/llama-server").resolve()
    assert lane.draft is not None
    assert lane.draft.path == (sub / "models/draft.gguf").resolve()


def test_relative_paths_in_defaults_resolve_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
model = "m.gguf"
draft = { kind = "mtp", path = "head.gguf", block_size = 4 }

[[lane]]
name = "a"
""",
    )
    (lane,) = load_lanes(path)
    assert lane.model == (tmp_path / "m.gguf").resolve()
    assert lane.draft == Draft(kind="mtp", path=(tmp_path / "head.gguf").resolve(), block_size=4)


def test_tilde_expands_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    path = write(
        tmp_path,
        """
[[lane]]
name = "tilde"
model = "~/models/main.gguf"
server_bin = "~/bin/llama-server"
draft = { kind = "model", path = "~/models/draft.gguf" }
""",
    )
    (lane,) = load_lanes(path)
    assert lane.model == home / "models/main.gguf"
    assert lane.server_bin == home / "bin/llama-server"
    assert lane.draft is not None and lane.draft.path == home / "models/draft.gguf"


def test_absolute_paths_stay(tmp_path: Path) -> None:
    path = write(tmp_path, '[[lane]]\nname = "abs"\nmodel = "/opt/models/x.gguf"\n')
    (lane,) = load_lanes(path)
    assert lane.model == Path("/opt/models/x.gguf")


def test_kv_is_normalised_to_lower_case(tmp_path: Path) -> None:
    (lane,) = load_lanes(write(tmp_path, '[[lane]]\nname = "k"\nkv = " Q8_0 "\n'))
    assert lane.kv == "q8_0"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('name = "a"\nkvv = "f16"', "lane 'a': field 'kvv': Extra inputs are not permitted"),
        (
            'name = "a"\nflash_attn = "yes"',
            "lane 'a': field 'flash_attn': Input should be 'on', 'off' or 'auto'",
        ),
        (
            'name = "a"\nflash_attn = "ON"',
            "lane 'a': field 'flash_attn': Input should be 'on', 'off' or 'auto'",
        ),
        (
            'name = "a"\ndraft = { kind = "model", path = "d.gguf", block_size = 1 }',
            "lane 'a': field 'draft.block_size': Input should be greater than or equal to 2",
        ),
        (
            'name = "a"\ndraft = { kind = "model", path = "d.gguf", blocksize = 4 }',
            "lane 'a': field 'draft.blocksize': Extra inputs are not permitted",
        ),
        (
            'name = "a"\ndraft = { kind = "eagle", path = "d.gguf" }',
            "lane 'a': field 'draft.kind': Input should be 'model' or 'mtp'",
        ),
        (
            'name = "a"\nkv = "q8 0"',
            "lane 'a': field 'kv': Value error, expected a cache type such as f16, q8_0, q4_0, got 'q8 0'",
        ),
        ('name = "a"\nkv = ""', "lane 'a': field 'kv': Value error, expected a cache type such as f16"),
        ('name = "a"\nslots = 0', "lane 'a': field 'slots': Input should be greater than or equal to 1"),
        (
            'name = "a"\ncache_ram = -2',
            "lane 'a': field 'cache_ram': Input should be greater than or equal to -1",
        ),
        ('name = "a"\ncache_ram = "off"', "lane 'a': field 'cache_ram': Input should be a valid integer"),
        ('kv = "f16"', "lane #1: field 'name': Field required"),
    ],
    ids=[
        "mistyped-field",
        "flash-attn-yes",
        "flash-attn-upper",
        "block-size-1",
        "mistyped-draft-field",
        "draft-kind",
        "kv-space",
        "kv-empty",
        "slots-0",
        "cache-ram-negative",
        "cache-ram-text",
        "no-name",
    ],
)
def test_bad_lane_field_is_one_line_naming_file_lane_field(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, f"[[lane]]\n{body}\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}: {expected}")


def test_every_problem_is_reported_one_line_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[lane]]
name = "a"
kvv = "f16"

[[lane]]
name = "b"
draft = { kind = "model", path = "d.gguf", block_size = 1 }
flash_attn = "maybe"
""",
    )
    assert problems(path) == [
        f"{path}: lane 'a': field 'kvv': Extra inputs are not permitted",
        f"{path}: lane 'b': field 'flash_attn': Input should be 'on', 'off' or 'auto'",
        f"{path}: lane 'b': field 'draft.block_size': Input should be greater than or equal to 2",
    ]


def test_duplicate_names(tmp_path: Path) -> None:
    path = write(tmp_path, '[[lane]]\nname = "x"\n[[lane]]\nname = "y"\n[[lane]]\nname = "x"\n')
    assert problems(path) == [f"{path}: lane name 'x' is used twice"]


def test_no_lane_entries(tmp_path: Path) -> None:
    path = write(tmp_path, '[defaults]\nkv = "f16"\n')
    assert problems(path) == [f"{path}: no [[lane]] entries"]


def test_lane_as_single_table_is_not_a_lane_list(tmp_path: Path) -> None:
    path = write(tmp_path, '[lane]\nname = "x"\n')
    assert problems(path) == [f"{path}: no [[lane]] entries"]


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert problems(path) == [f"{path}: no [[lane]] entries"]


def test_defaults_cannot_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[defaults]\nname = "all"\n[[lane]]\nname = "a"\n')
    assert problems(path) == [f"{path}: [defaults] cannot set 'name' (each lane names itself)"]


def test_unknown_top_level_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[default]\nkv = "f16"\n[[lane]]\nname = "a"\n')
    assert problems(path) == [f"{path}: unknown table 'default' (expected [job], [defaults] and [[lane]])"]


def test_unknown_field_in_defaults_is_named_once_as_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, '[defaults]\nthreds = 4\n[[lane]]\nname = "a"\n[[lane]]\nname = "b"\n')
    assert problems(path) == [f"{path}: [defaults]: field 'threds': Extra inputs are not permitted"]


def test_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, '[[lane]]\nname = "a\n')
    (line,) = problems(path)
    assert line.startswith(f"{path}: not valid TOML (")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert problems(path) == [f"{path}: lanes file not found"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (line,) = problems(tmp_path)
    assert line.startswith(f"{tmp_path}: cannot read lanes file (")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "lanes.toml"
    path.write_bytes(b'[[lane]]\nname = "\xff\xfe"\n')
    (line,) = problems(path)
    assert line.startswith(f"{path}: cannot read lanes file (")


def test_parse_lanes_uses_the_given_source_and_base(tmp_path: Path) -> None:
    lanes = parse_lanes({"lane": [{"name": "a", "model": "m.gguf"}]}, "inline", tmp_path)
    assert lanes[0].model == (tmp_path / "m.gguf").resolve()
    with pytest.raises(BadInput, match=r"^inline: lane 'a': field 'kv'"):
        parse_lanes({"lane": [{"name": "a", "kv": 3}]}, "inline", tmp_path)


def test_model_draft_without_path_drafts_with_the_lane_model(tmp_path: Path) -> None:
    (lane,) = load_lanes(write(tmp_path, '[[lane]]\nname = "self"\ndraft = { kind = "model" }\n'))
    assert lane.draft is not None and lane.draft.path is None
    assert lane.draft_path(Path("/m/main.gguf")) == Path("/m/main.gguf")
    assert LaneSpec(name="plain").draft_path(Path("/m/main.gguf")) is None


def test_mtp_draft_without_path_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[[lane]]\nname = "m"\ndraft = { kind = "mtp" }\n')
    (line,) = problems(path)
    assert line.startswith(f"{path}: lane 'm': ")
    assert "draft.path" in line and "MTP" in line


def test_mtp_draft_without_path_names_the_field_cleanly(tmp_path: Path) -> None:
    path = write(tmp_path, '[[lane]]\nname = "m"\ndraft = { kind = "mtp" }\n')
    (line,) = problems(path)
    assert "field ''" not in line
    assert line.startswith((f"{path}: lane 'm': field 'draft.path': ", f"{path}: lane 'm': field 'draft': "))


def test_lane_spec_is_frozen() -> None:
    lane = LaneSpec(name="a")
    with pytest.raises(Exception, match="frozen"):
        lane.kv = "q8_0"  # type: ignore[misc]


def test_lane_draft_table_merges_over_defaults_draft(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
draft = { kind = "model", path = "d.gguf" }

[[lane]]
name = "B=2"
draft = { block_size = 2 }

[[lane]]
name = "B=5"
draft = { block_size = 5 }
""",
    )
    lanes = load_lanes(path)
    assert [lane.draft.block_size for lane in lanes if lane.draft] == [2, 5]
    assert all(lane.draft and lane.draft.path == (tmp_path / "d.gguf").resolve() for lane in lanes)
