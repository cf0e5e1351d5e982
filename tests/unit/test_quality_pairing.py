"""Which lanes llama-perplexity can reproduce, and pairings with the reference that mean nothing
(refused before anything runs): every way two lanes can differ, read against b11434's real
``llama-server --help`` and ``llama-perplexity --help`` (tests/fixtures/help, .../perplexity)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lanebench.config.lanes import LaneSpec
from lanebench.engines.llamacpp.dialect import parse_dialect
from lanebench.errors import BadInput
from lanebench.gguf.tokenizer import Vocab
from lanebench.quality import reproduce as rp
from lanebench.quality.flags import Options, drafting_args, parse_options, split_args
from lanebench.quality.select import QualityLane

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SERVER_HELP = (FIX / "help" / "b11434.help").read_text()
TOOL_HELP = (FIX / "perplexity" / "b11434.help").read_text()
BIN = Path("/opt/b11434/llama-server")
MODEL = Path("/models/gemma-3-270m-q4_k_m.gguf")


def build(**dialect_changes: Any) -> rp.Build:
    dialect = parse_dialect("", TOOL_HELP)
    return rp.Build(parse_options(SERVER_HELP), parse_options(TOOL_HELP), replace(dialect, **dialect_changes))


def ql(name: str = "x", server_bin: Path = BIN, model: Path = MODEL, **kw: Any) -> QualityLane:
    return QualityLane(LaneSpec.model_validate({"name": name, **kw}), server_bin, model)


# --- the help texts -----------------------------------------------------------------------------
def test_options_come_from_the_builds_own_help() -> None:
    server, tool = parse_options(SERVER_HELP), parse_options(TOOL_HELP)
    ctk = server.get("--cache-type-k")
    assert ctk is not None and ctk.takes_value and ctk.env == "LLAMA_ARG_CACHE_TYPE_K" and tool.takes(ctk)
    cram = server.get("-cram")
    assert cram is not None and cram.section == "example-specific" and not tool.takes(cram)
    assert server.get("--temp").section == "sampling"  # type: ignore[union-attr]
    assert server.get("--spec-draft-p-min").section == "speculative"  # type: ignore[union-attr]
    base = tool.get("--kl-divergence-base")  # a head too long for the help column stands alone
    assert base is not None and base.takes_value
    assert server.get("--draft-max") is None, "an argument the build says was removed is not an option"
    assert server.get("--cache_ram") is cram, "arg.cpp reads '_' in a long flag as '-'"


def test_extra_args_split_by_what_takes_a_value() -> None:
    argv = ["-kvu", "--rope-freq-base", "20000", "--metrics", "--nope", "3"]
    args = split_args(argv, parse_options(SERVER_HELP))
    assert [a.tokens for a in args] == [
        ["-kvu"],
        ["--rope-freq-base", "20000"],
        ["--metrics"],
        ["--nope"],
        ["3"],
    ]
    assert args[3].option is None


@pytest.mark.parametrize(
    ("extra_args", "env", "drafts"),
    [
        (["-md", "d.gguf"], {}, True),
        (["--spec-type", "ngram-simple"], {}, True),
        (["--spec-type", "none"], {}, False),
        (["--spec-default"], {}, True),
        (["-lcs", "cache.bin"], {}, True),
        (["--spec-draft-n-max", "4"], {}, False),  # settings alone switch nothing on
        ([], {"LLAMA_ARG_SPEC_TYPE": "draft-simple"}, True),
        ([], {"LLAMA_ARG_SPEC_TYPE": "none"}, False),
        ([], {"GGML_SCHED_MAX_COPIES": "1"}, False),
    ],
)
def test_drafting_switched_on_outside_the_draft_field(
    extra_args: list[str], env: dict[str, str], drafts: bool
) -> None:
    assert drafting_args(extra_args, env) is drafts
    assert ql(extra_args=extra_args, env=env).drafting is drafts


# --- what the tool reproduces -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "passed", "env"),
    [
        ({"extra_args": ["--rope-freq-base", "20000"]}, ["--rope-freq-base", "20000"], ()),
        ({"extra_args": ["-ot", "blk.1=CPU", "-nkvo"]}, ["-ot", "blk.1=CPU", "-nkvo"], ()),
        ({"extra_args": ["-ctk", "q8_0", "-ctv", "q8_0"]}, ["-ctk", "q8_0", "-ctv", "q8_0"], ()),
        ({"extra_args": ["--swa-full", "--lora", "a.gguf"]}, ["--swa-full", "--lora", "a.gguf"], ()),
        (
            {"split_mode": "layer", "tensor_split": [3, 1], "main_gpu": 1},
            ["-sm", "layer", "-ts", "3,1", "-mg", "1"],
            (),
        ),
        ({"devices": ["CUDA0"], "rpc": ["10.0.0.2:50052"]}, ["--rpc", "10.0.0.2:50052", "-dev", "CUDA0"], ()),
        ({"env": {"GGML_CUDA_FORCE_MMQ": "1"}}, [], (("GGML_CUDA_FORCE_MMQ", "1"),)),
        ({"env": {"LLAMA_ARG_ROPE_FREQ_BASE": "20000"}}, [], (("LLAMA_ARG_ROPE_FREQ_BASE", "20000"),)),
        # the tool's own method, logging, sampling, speculative settings, server-only options
        ({"extra_args": ["-c", "8192", "-b", "4096", "-ub", "1024", "-np", "4"]}, [], ()),
        ({"extra_args": ["-lv", "4", "--log-disable", "--temp", "0.7", "--samplers", "top_k"]}, [], ()),
        ({"extra_args": ["--spec-draft-n-max", "4", "--spec-draft-p-min", "0.5"]}, [], ()),
        ({"extra_args": ["--cache-ram", "0", "--cache-reuse", "256", "-ctxcp", "0", "--metrics"]}, [], ()),
        ({"extra_args": ["--jinja", "--reasoning-budget", "0", "-to", "60", "--no-cache-prompt"]}, [], ()),
        ({"env": {"LLAMA_ARG_CACHE_RAM": "0", "LLAMA_ARG_CTX_SIZE": "8192"}}, [], ()),
    ],
)
def test_what_the_tool_is_given(
    fields: dict[str, Any], passed: list[str], env: tuple[tuple[str, str], ...]
) -> None:
    lane, problems = rp.reproduce(ql(**fields), build())
    assert problems == []
    assert lane is not None and list(lane.extra) == passed and lane.env == env


NO = "llama-perplexity of this build takes no"
BARE = {"flags": frozenset({"-m"})}  # a tool that lists almost nothing


@pytest.mark.parametrize(
    ("fields", "dialect", "line"),
    [
        (
            {"extra_args": ["--lora-init-without-apply"]},
            {},
            "field 'extra_args': --lora-init-without-apply: a llama-server option that llama-perplexity "
            "does not take",
        ),
        ({"extra_args": ["--models-dir", "/m"]}, {}, "'extra_args': --models-dir: a llama-server option"),
        (
            {"extra_args": ["--no-such"]},
            {},
            "'extra_args': --no-such is not an option of this build's llama-server",
        ),
        ({"extra_args": ["-m", "/o.gguf"]}, {}, "'extra_args': -m: sets the model; give it in field 'model'"),
        ({"extra_args": ["-hf", "org/model"]}, {}, "field 'extra_args': -hf: sets the model"),
        (
            {"env": {"LLAMA_ARG_MODELS_DIR": "/m"}},
            {},
            "field 'env': LLAMA_ARG_MODELS_DIR: a llama-server option",
        ),
        ({"rpc_local": [{}]}, {}, "field 'rpc_local': llama-perplexity cannot reach the RPC servers"),
        (
            {"kv": "turbo3", "flash_attn": "on"},
            {},
            f"field 'kv': {NO} cache type 'turbo3' (it lists f32, f16",
        ),
        (
            {"kv": "q8_0"},
            {"flags": frozenset({"-m", "-fa"})},
            f"field 'kv': {NO} cache type 'q8_0' (no -ctk/-ctv)",
        ),
        ({"gpu_layers": 99}, BARE, f"field 'gpu_layers': {NO} -ngl"),
        ({"flash_attn": "on"}, BARE, f"field 'flash_attn': {NO} -fa"),
        ({"split_mode": "row"}, BARE, f"field 'split_mode': {NO} -sm"),
        ({"tensor_split": [1, 1]}, BARE, f"field 'tensor_split': {NO} -ts"),
        ({"main_gpu": 1}, BARE, f"field 'main_gpu': {NO} -mg"),
        ({"devices": ["CUDA1"]}, BARE, f"field 'devices': {NO} --device"),
        ({"rpc": ["h:1"]}, BARE, f"field 'rpc': {NO} --rpc"),
        ({"split_mode": "tensor"}, {"split_modes": ("none", "layer", "row")}, "'tensor' is not a split mode"),
    ],
)
def test_what_the_tool_cannot_reproduce_is_one_line_naming_lane_and_field(
    fields: dict[str, Any], dialect: dict[str, Any], line: str
) -> None:
    lane, problems = rp.reproduce(ql("odd", **fields), build(**dialect))
    assert lane is None and len(problems) == 1
    assert problems[0].startswith("lane 'odd': ") and line in problems[0], problems[0]
    assert "\n" not in problems[0]


def test_every_problem_of_a_lane_is_listed() -> None:
    _, problems = rp.reproduce(ql("odd", rpc_local=[{}], extra_args=["--nope", "--models-dir", "m"]), build())
    assert len(problems) == 3


def test_lanes_the_tool_runs_alike_share_a_run_and_others_do_not() -> None:
    def key(**kw: Any) -> str:
        lane, problems = rp.reproduce(ql(**kw), build())
        assert lane is not None, problems
        return lane.key()

    plain = key()
    assert key(threads=4, extra_args=["--cache-ram", "0", "-c", "9000", "--temp", "1"]) == plain
    assert key(extra_args=["--rope-freq-base", "20000"]) != plain
    assert key(env={"GGML_CUDA_FORCE_MMQ": "1"}) != plain
    assert key(split_mode="row") != plain


# --- the pair ------------------------------------------------------------------------------------
GEMMA = Vocab("llama", "spm", 262144, 2, 1, True, False, "aaa", "aaa5")


@pytest.mark.parametrize(
    ("other", "line"),
    [
        (replace(GEMMA, n_tokens=49152, hash_all="bbb"), "tokens 49152 (sha bbb) against 262144 (sha aaa)"),
        (replace(GEMMA, hash_all="ccc"), "tokens 262144 (sha ccc) against 262144 (sha aaa)"),
        (replace(GEMMA, model="gpt2", vocab_type="bpe"), "tokenizer gpt2 against llama"),
        (replace(GEMMA, bos=0), "BOS id 0 against 2"),
        (replace(GEMMA, add_bos=False), "add_bos False against True"),
        (replace(GEMMA, add_eos=True), "add_eos True against False"),
    ],
)
def test_another_vocabulary_is_refused(other: Vocab, line: str) -> None:
    ref, lane = ql("ref"), ql("other", model=Path("/models/other.gguf"))
    (problem,) = rp.pair_problems(ref, lane, lambda p: GEMMA if p == MODEL else other)
    assert problem.startswith(
        "lane 'other': field 'model': other.gguf has another vocabulary than the reference 'ref'"
    )
    assert line in problem


def test_same_vocabulary_in_another_file_is_a_fair_pair() -> None:
    ref, lane = ql("ref"), ql("q8", model=Path("/models/gemma-3-270m-Q8_0.gguf"))
    assert rp.pair_problems(ref, lane, lambda p: GEMMA) == []


def test_another_build_is_refused() -> None:
    ref, lane = ql("ref"), ql("vulkan", server_bin=Path("/opt/vulkan/llama-server"))
    (problem,) = rp.pair_problems(ref, lane, lambda p: GEMMA)
    assert problem.startswith("lane 'vulkan': field 'server_bin': /opt/vulkan/llama-server is not the build")
    assert "a KLD across builds measures the builds" in problem


# --- the plan ------------------------------------------------------------------------------------
@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lane's build answers --help like b11434 (no binary runs)."""
    monkeypatch.setattr(rp, "find_perplexity", lambda server_bin: server_bin.parent / "llama-perplexity")
    monkeypatch.setattr(rp, "_build", lambda q: build())
    monkeypatch.setattr(rp, "vocab_of", lambda g: GEMMA)
    monkeypatch.setattr(rp, "open_gguf", lambda p: p)


def test_the_plan_lists_every_refusal_before_anything_runs(builds: None) -> None:
    lanes = [
        ql("ref"),
        ql("cache-off", extra_args=["--lora-init-without-apply"]),
        ql("vk", server_bin=Path("/opt/vk/llama-server")),
        ql("rpc", rpc_local=[{}]),
        ql("draft", draft={"kind": "model"}, extra_args=["--lora-init-without-apply"]),  # a verdict, no KLD
        ql("emu", draft={"kind": "model", "emulate": [0.5, 0.5]}),
    ]
    with pytest.raises(BadInput) as exc:
        rp.plan_scoring(lanes, [q.name for q in lanes], None)
    lines = str(exc.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["lane 'cache-off'", "lane 'vk'", "lane 'rpc'"]


def test_the_plan_refuses_a_reference_the_tool_cannot_reproduce(builds: None) -> None:
    lanes = [ql("ref", reference=True, extra_args=["--models-dir", "m"]), ql("q8", kv="q8_0")]
    with pytest.raises(BadInput, match="lane 'ref': field 'extra_args': --models-dir"):
        rp.plan_scoring(lanes, ["q8"], None)


def test_the_plan_of_fair_pairs(builds: None) -> None:
    lanes = [ql("ref"), ql("q8", kv="q8_0", flash_attn="on"), ql("draft", draft={"kind": "model"})]
    scoring = rp.plan_scoring(lanes, ["q8", "draft"], None)
    assert scoring.reference is not None and scoring.reference.name == "ref"
    assert set(scoring.tool_lanes) == {"ref", "q8"}, "a drafting lane is never scored by the tool"
    assert rp.plan_scoring(lanes, ["draft"], None).tool_lanes == {}


def test_options_without_a_tool_flag_are_not_passed_for_a_tool_that_lacks_them() -> None:
    tool = Options()  # a build whose tool lists nothing
    b = rp.Build(parse_options(SERVER_HELP), tool, parse_dialect("", TOOL_HELP))
    _, problems = rp.reproduce(ql(extra_args=["--rope-freq-base", "1"]), b)
    assert problems
    assert "--rope-freq-base: a llama-server option that llama-perplexity does not take" in problems[0]
