"""build_argv: a lane, a build's dialect and a port in; a list[str] command line out (pure)."""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path

import pytest

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.llamacpp.argv import LaneRefused, at_port, build_argv
from lanebench.engines.llamacpp.dialect import Dialect, parse_dialect
from lanebench.errors import BadInput

HELP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "help"
BIN = Path("/opt/llama/bin/llama-server")
MODEL = Path("/models/main.gguf")
DRAFT = Path("/models/draft.gguf")
HEAD = Path("/models/mtp-head.gguf")
PORT = 43210

UPSTREAM, ATOMIC, LEGACY = "b11434", "atomic", "legacy-b5xxx"
ALL = [UPSTREAM, ATOMIC, LEGACY]


@cache
def dialect(name: str) -> Dialect:
    return parse_dialect(
        (HELP_DIR / f"{name}.version").read_text(encoding="utf-8"),
        (HELP_DIR / f"{name}.help").read_text(encoding="utf-8"),
    )


def lane(**kw: object) -> LaneSpec:
    kw.setdefault("name", "L")
    kw.setdefault("ctx", 4096)
    return LaneSpec(**kw)  # type: ignore[arg-type]


def argv(spec: LaneSpec, name: str) -> list[str]:
    return build_argv(spec, dialect(name), BIN, MODEL, PORT)


def value_after(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} appears {args.count(flag)} times in {args}"
    return args[args.index(flag) + 1]


def pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(args))


@pytest.mark.parametrize("name", ALL)
def test_plain_lane(name: str) -> None:
    args = argv(lane(slots=3), name)
    assert isinstance(args, list) and all(isinstance(a, str) for a in args)
    assert args[0] == str(BIN)
    assert value_after(args, "-m") == str(MODEL)
    assert value_after(args, "--host") == "127.0.0.1"
    assert value_after(args, "--port") == str(PORT)
    assert value_after(args, "-c") == "4096"
    assert value_after(args, "-np") == "3"
    assert "--metrics" in args
    assert value_after(args, "-ctk") == "f16" and value_after(args, "-ctv") == "f16"
    for flag in (
        "-md",
        "--spec-type",
        "--spec-draft-n-max",
        "--draft-max",
        "--draft-block-size",
        "-t",
        "-ngl",
    ):
        assert flag not in args


@pytest.mark.parametrize("name", ALL)
def test_every_argv_listens_on_loopback_with_metrics(name: str) -> None:
    for spec in (lane(), lane(kv="q8_0", flash_attn="on"), lane(draft=Draft(kind="model", path=DRAFT))):
        args = argv(spec, name)
        assert ("--host", "127.0.0.1") in pairs(args)
        assert "--metrics" in args
        assert "0.0.0.0" not in args


def test_port_is_the_one_given() -> None:
    a = build_argv(lane(), dialect(UPSTREAM), BIN, MODEL, 8081)
    b = build_argv(lane(), dialect(UPSTREAM), BIN, MODEL, 9999)
    assert value_after(a, "--port") == "8081" and value_after(b, "--port") == "9999"
    assert [x for x in a if x not in {"8081"}] == [x for x in b if x not in {"9999"}]


@pytest.mark.parametrize("name", [UPSTREAM, ATOMIC])
def test_kv_q8_0_with_flash_attn_on_upstream_style(name: str) -> None:
    args = argv(lane(kv="q8_0", flash_attn="on"), name)
    assert value_after(args, "-ctk") == "q8_0" and value_after(args, "-ctv") == "q8_0"
    assert value_after(args, "-fa") == "on"


@pytest.mark.parametrize("fa", ["on", "off", "auto"])
def test_flash_attn_value_is_passed_when_the_build_takes_one(fa: str) -> None:
    args = argv(lane(flash_attn=fa), UPSTREAM)
    assert value_after(args, "-fa") == fa


def test_legacy_flash_attn_is_a_bare_switch() -> None:
    on = argv(lane(kv="q8_0", flash_attn="on"), LEGACY)
    assert on.count("-fa") == 1
    assert not {"on", "off", "auto"} & set(on[on.index("-fa") :])
    assert "-fa" not in argv(lane(flash_attn="off"), LEGACY)
    assert "-fa" not in argv(lane(flash_attn="auto"), LEGACY)


def test_legacy_quantised_kv_with_auto_flash_attn_switches_it_on() -> None:
    args = argv(lane(kv="q8_0", flash_attn="auto"), LEGACY)
    assert "-fa" in args


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (UPSTREAM, ["-md", str(DRAFT), "--spec-type", "draft-simple", "--spec-draft-n-max", "4"]),
        (ATOMIC, ["-md", str(DRAFT), "--draft-block-size", "5"]),
        (LEGACY, ["-md", str(DRAFT), "--draft-max", "4"]),
    ],
    ids=["upstream", "atomic", "legacy"],
)
def test_draft_model_block_size(name: str, expected: list[str]) -> None:
    args = argv(lane(draft=Draft(kind="model", path=DRAFT, block_size=5)), name)
    start = args.index("-md")
    assert args[start : start + len(expected)] == expected


@pytest.mark.parametrize("block", [2, 3, 4, 8, 33])
def test_upstream_draft_n_max_is_block_minus_one(block: int) -> None:
    args = argv(lane(draft=Draft(kind="model", path=DRAFT, block_size=block)), UPSTREAM)
    assert value_after(args, "--spec-draft-n-max") == str(block - 1)
    args = argv(lane(draft=Draft(kind="model", path=DRAFT, block_size=block)), LEGACY)
    assert value_after(args, "--draft-max") == str(block - 1)
    args = argv(lane(draft=Draft(kind="model", path=DRAFT, block_size=block)), ATOMIC)
    assert value_after(args, "--draft-block-size") == str(block)


@pytest.mark.parametrize("name", ALL)
def test_draft_model_without_path_drafts_with_the_main_model(name: str) -> None:
    args = argv(lane(draft=Draft(kind="model", block_size=4)), name)
    assert value_after(args, "-md") == str(MODEL)


def test_mtp_upstream() -> None:
    args = argv(lane(draft=Draft(kind="mtp", path=HEAD, block_size=4)), UPSTREAM)
    start = args.index("--spec-type")
    assert args[start : start + 2] == ["--spec-type", "draft-mtp"]
    assert value_after(args, "-md") == str(HEAD)
    assert value_after(args, "--spec-draft-n-max") == "3"
    assert "--mtp-head" not in args


def test_mtp_atomic() -> None:
    args = argv(lane(draft=Draft(kind="mtp", path=HEAD, block_size=4)), ATOMIC)
    assert value_after(args, "--mtp-head") == str(HEAD)
    assert value_after(args, "--spec-type") == "mtp"
    assert value_after(args, "--draft-block-size") == "4"
    assert "-md" not in args


def test_mtp_refused_on_legacy_naming_the_missing_flags() -> None:
    with pytest.raises(LaneRefused) as info:
        argv(lane(name="mtp lane", draft=Draft(kind="mtp", path=HEAD)), LEGACY)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("lane 'mtp lane': field 'draft.kind' = 'mtp'")
    assert "--spec-type draft-mtp" in msg and "--mtp-head" in msg
    assert "version: 5600" in msg
    assert isinstance(info.value, BadInput)


def test_mtp_refused_when_upstream_spec_types_lack_draft_mtp() -> None:
    d = dialect(UPSTREAM)
    old = Dialect(
        version_text=d.version_text,
        build=d.build,
        commit=d.commit,
        flags=d.flags,
        spec_types=("none", "draft-simple"),
        kv_types=d.kv_types,
        flash_attn_values=d.flash_attn_values,
    )
    with pytest.raises(LaneRefused, match=r"cannot draft with an MTP head"):
        build_argv(lane(draft=Draft(kind="mtp", path=HEAD)), old, BIN, MODEL, PORT)


def test_draft_refused_on_a_build_without_speculative_flags() -> None:
    d = dialect(UPSTREAM)
    bare = Dialect(
        version_text="version: x",
        build=None,
        commit=None,
        flags=frozenset(f for f in d.flags if "draft" not in f and "spec" not in f),
        kv_types=d.kv_types,
        flash_attn_values=d.flash_attn_values,
    )
    assert bare.speculative == "none"
    with pytest.raises(LaneRefused, match=r"^lane 'L': this llama-server build has no --spec-draft-n-max"):
        build_argv(lane(draft=Draft(kind="model", path=DRAFT)), bare, BIN, MODEL, PORT)


@pytest.mark.parametrize("name", ALL)
def test_kv_type_not_listed_is_refused(name: str) -> None:
    with pytest.raises(LaneRefused) as info:
        argv(lane(name="odd kv", kv="q3_k", flash_attn="on"), name)
    msg = str(info.value)
    assert msg.startswith("lane 'odd kv': field 'kv' = 'q3_k' is not a cache type of this build")
    assert "q8_0" in msg  # it lists what the build has


def test_atomic_only_kv_type() -> None:
    args = argv(lane(kv="turbo3", flash_attn="on"), ATOMIC)
    assert value_after(args, "-ctk") == "turbo3"
    with pytest.raises(LaneRefused, match="turbo3"):
        argv(lane(kv="turbo3", flash_attn="on"), UPSTREAM)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("kv", ["q8_0", "q4_0"])
def test_quantised_kv_with_flash_attn_off_is_refused(name: str, kv: str) -> None:
    with pytest.raises(LaneRefused) as info:
        argv(lane(kv=kv, flash_attn="off"), name)
    msg = str(info.value)
    assert msg.startswith(f"lane 'L': field 'kv' = '{kv}' quantises the V cache")
    assert "flash_attn" in msg


@pytest.mark.parametrize("kv", ["f32", "f16", "bf16"])
def test_unquantised_kv_with_flash_attn_off_is_fine(kv: str) -> None:
    args = argv(lane(kv=kv, flash_attn="off"), UPSTREAM)
    assert value_after(args, "-ctk") == kv and value_after(args, "-fa") == "off"


@pytest.mark.parametrize(
    ("name", "flag"),
    [(UPSTREAM, "--spec-draft-p-min"), (ATOMIC, "--draft-p-min"), (LEGACY, "--draft-p-min")],
)
def test_p_min_mapping(name: str, flag: str) -> None:
    args = argv(lane(draft=Draft(kind="model", path=DRAFT, p_min=0.5)), name)
    assert value_after(args, flag) == "0.5"
    without = argv(lane(draft=Draft(kind="model", path=DRAFT)), name)
    assert flag not in without


@pytest.mark.parametrize("name", ALL)
def test_draft_gpu_layers(name: str) -> None:
    args = argv(lane(draft=Draft(kind="model", path=DRAFT, gpu_layers=99)), name)
    assert value_after(args, "-ngld") == "99"


@pytest.mark.parametrize("name", ALL)
def test_threads_gpu_layers_and_extra_args_order(name: str) -> None:
    spec = lane(
        threads=2,
        gpu_layers=0,
        extra_args=["--seed", "7", "-fa", "off"],
        draft=Draft(kind="model", path=DRAFT),
    )
    args = argv(spec, name)
    assert ("-t", "2") in pairs(args)
    assert ("-ngl", "0") in pairs(args)
    assert args[-4:] == ["--seed", "7", "-fa", "off"]  # last, so they override lanebench's own
    assert args.index("-m") < args.index("-t") < args.index("-ngl") < args.index("-md") < len(args) - 4


def test_empty_ctx_never_becomes_the_string_none() -> None:
    args = build_argv(LaneSpec(name="no ctx"), dialect(UPSTREAM), BIN, MODEL, PORT)
    assert "None" not in args


def test_lane_refused_names_missing_metrics_flag() -> None:
    d = dialect(UPSTREAM)
    no_metrics = Dialect(
        version_text="version: y",
        build=None,
        commit=None,
        flags=d.flags - {"--metrics"},
        spec_types=d.spec_types,
        kv_types=d.kv_types,
        flash_attn_values=d.flash_attn_values,
    )
    with pytest.raises(
        LaneRefused, match=r"^lane 'L': this llama-server build has no --metrics \(version: y\)$"
    ):
        build_argv(lane(), no_metrics, BIN, MODEL, PORT)


def test_build_argv_is_pure() -> None:
    spec = lane(kv="q8_0", flash_attn="on", threads=4, draft=Draft(kind="model", path=DRAFT, block_size=4))
    first = argv(spec, UPSTREAM)
    assert argv(spec, UPSTREAM) == first
    first.append("--mutated")
    assert "--mutated" not in argv(spec, UPSTREAM)


def test_emulated_acceptance_maps_to_spec_synth_flags() -> None:
    up = dialect(UPSTREAM)
    lane = LaneSpec(name="e", draft=Draft(kind="model", block_size=3, emulate=[0.92, 0.85]))
    argv = build_argv(lane, up, Path("/bin/llama-server"), Path("/m.gguf"), 8080)
    i = argv.index("--spec-synth-rates")
    assert argv[i + 1] == "0.92,0.85"
    assert lane.emulated
    lane = LaneSpec(name="e", draft=Draft(kind="model", block_size=4, emulate_mean_length=2.5))
    argv = build_argv(lane, up, Path("/bin/llama-server"), Path("/m.gguf"), 8080)
    assert argv[argv.index("--spec-synth-len") + 1] == "2.5"
    assert not LaneSpec(name="p", draft=Draft(kind="model")).emulated


@pytest.mark.parametrize("build", [ATOMIC, LEGACY])
def test_a_build_without_spec_synth_is_refused_naming_the_flag(build: str) -> None:
    rates = LaneSpec(name="e", draft=Draft(kind="model", block_size=3, emulate=[0.5, 0.5]))
    with pytest.raises(LaneRefused, match="no --spec-synth-rates"):
        build_argv(rates, dialect(build), BIN, MODEL, PORT)
    length = LaneSpec(name="e", draft=Draft(kind="model", block_size=3, emulate_mean_length=2))
    with pytest.raises(LaneRefused, match="no --spec-synth-len"):
        build_argv(length, dialect(build), BIN, MODEL, PORT)


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        ({"kind": "model", "block_size": 3, "emulate": [0.5]}, "one rate per position"),
        ({"kind": "model", "block_size": 3, "emulate": [0.5, 0.7]}, "must not increase"),
        ({"kind": "model", "block_size": 3, "emulate": [0.5, 1.5]}, "less than or equal to 1"),
        ({"kind": "model", "block_size": 3, "emulate_mean_length": 3.5}, "more than block_size 3"),
        ({"kind": "model", "block_size": 3, "emulate": [0.5, 0.5], "emulate_mean_length": 2}, "not both"),
    ],
)
def test_bad_emulation_fields_are_refused(draft: dict[str, object], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        LaneSpec.model_validate({"name": "e", "draft": draft})


@pytest.mark.parametrize(("cache_ram", "value"), [(0, "0"), (-1, "-1"), (4096, "4096")])
@pytest.mark.parametrize("name", [UPSTREAM, ATOMIC])
def test_cache_ram_maps_to_the_flag_the_help_lists(name: str, cache_ram: int, value: str) -> None:
    args = argv(lane(cache_ram=cache_ram), name)
    assert value_after(args, "-cram") == value


def test_cache_ram_left_empty_is_the_servers_default() -> None:
    args = argv(lane(), UPSTREAM)
    assert "-cram" not in args and "--cache-ram" not in args
    assert dialect(UPSTREAM).default("--cache-ram") == "8192"  # recorded with the run's builds
    assert dialect(UPSTREAM).to_dict()["defaults"]["--cache-ram"] == "8192"


def test_cache_ram_on_a_build_without_it_is_refused_naming_the_flag() -> None:
    with pytest.raises(
        LaneRefused, match=r"lane 'L': field 'cache_ram': this llama-server build has no --cache-ram"
    ):
        argv(lane(cache_ram=0), LEGACY)


def test_cache_ram_given_twice_is_refused() -> None:
    with pytest.raises(LaneRefused, match="both set the prompt cache"):
        argv(lane(cache_ram=0, extra_args=["--cache-ram", "1024"]), UPSTREAM)


def test_at_port_moves_the_listening_port_and_nothing_else() -> None:
    built = build_argv(lane(extra_args=["--alias", "43210"]), dialect(UPSTREAM), BIN, MODEL, 0)
    moved = at_port(built, PORT)
    assert moved == build_argv(lane(extra_args=["--alias", "43210"]), dialect(UPSTREAM), BIN, MODEL, PORT)
    assert value_after(moved, "--port") == str(PORT) and moved[-2:] == ["--alias", "43210"]


def test_the_server_runs_the_argv_its_plan_built_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp's endpoint serves ``argv_preview`` at the port it finds; it builds no second argv
    (a plan whose preview is empty, built by hand, gets one built then)."""
    from lanebench.engines.base import LanePlan
    from lanebench.engines.llamacpp.engine import LlamaCpp

    engine = LlamaCpp()
    plan = LanePlan(
        lane(), engine, 4096, build=str(BIN), server_bin=BIN, dialect=dialect(UPSTREAM), model=MODEL
    )
    plan.argv_preview = engine.argv(plan, 0)

    def rebuilt(*_: object) -> list[str]:
        raise AssertionError("the argv was built a second time")

    monkeypatch.setattr(LlamaCpp, "argv", rebuilt)
    server = engine.endpoint(plan, tmp_path / "lane.log", 1.0)
    assert server.argv_for_port(PORT) == at_port(plan.argv_preview, PORT)  # type: ignore[attr-defined]
    monkeypatch.undo()
    plan.argv_preview = []
    server = engine.endpoint(plan, tmp_path / "lane.log", 1.0)
    assert value_after(server.argv_for_port(PORT), "--port") == str(PORT)  # type: ignore[attr-defined]
