"""The kernel view: llama-bench's flags from its real --help, argv from a lane, its JSON parsed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.llamacpp.bench_args import CPU_MOE_OVERRIDE, split_args
from lanebench.engines.llamacpp.llamabench import bench_argv, parse_bench_json, parse_flags
from lanebench.records.baseline import BaselineRecord

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "llamabench"
BIN, MODEL = Path("/opt/llama/bin/llama-bench"), Path("/models/m.gguf")


def flags() -> frozenset[str]:
    return parse_flags((FIX / "b11434.help").read_text())


def test_flags_come_from_the_real_help() -> None:
    f = flags()
    assert {"-p", "-n", "-r", "-o", "-t", "-ngl", "-ctk", "-ctv", "-fa", "-b", "-ub", "-m"} <= f
    assert "--flash-attn" in f and "-hf" in f
    assert "(default:" not in "".join(f)


def test_argv_carries_the_lanes_settings() -> None:
    lane = LaneSpec(name="q8", kv="q8_0", flash_attn="on", threads=2, gpu_layers=99)
    prefill, decode, notes = bench_argv(BIN, flags(), lane, MODEL, 1150, 200, 3)
    head = [str(BIN), "-m", str(MODEL)]
    assert prefill[:11] == [*head, "-p", "1150", "-n", "0", "-d", "0", "-r", "3"]
    assert decode[:11] == [*head, "-p", "0", "-n", "200", "-d", "1150", "-r", "3"]
    for argv in (prefill, decode):
        pairs = dict(zip(argv[13::2], argv[14::2], strict=True))
        assert pairs == {"-t": "2", "-ngl": "99", "-ctk": "q8_0", "-ctv": "q8_0", "-fa": "on"}
    assert notes == []


@pytest.mark.parametrize(
    ("depth", "n_in", "prefill_d", "decode_d"),
    [(0, 1150, "0", "1150"), (0, 32768, "0", "32768"), (4096, 1150, "4096", "5246")],
)
def test_prefill_runs_at_the_depth_and_decode_after_the_prompt(
    depth: int, n_in: int, prefill_d: str, decode_d: str
) -> None:
    prefill, decode, _ = bench_argv(BIN, flags(), LaneSpec(name="L"), MODEL, n_in, 256, 2, depth=depth)
    assert prefill[prefill.index("-d") + 1] == prefill_d and prefill[prefill.index("-n") + 1] == "0"
    assert decode[decode.index("-d") + 1] == decode_d and decode[decode.index("-p") + 1] == "0"


def test_a_llama_bench_without_depth_says_where_decode_was_measured() -> None:
    prefill, decode, notes = bench_argv(BIN, flags() - {"-d"}, LaneSpec(name="L"), MODEL, 512, 64, 2)
    assert "-d" not in prefill and "-d" not in decode
    assert any("no -d: decode measured at depth 0, not 512" in n for n in notes)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["-ub", "256"], {"-ub": "256"}),
        (["--batch-size", "1024", "--ubatch-size", "128"], {"-b": "1024", "-ub": "128"}),
        (["-ot", "blk\\.1\\.ffn=CPU,blk\\.2\\.ffn=CPU"], {"-ot": "blk\\.1\\.ffn=CPU;blk\\.2\\.ffn=CPU"}),
        (["--cpu-moe"], {"-ot": CPU_MOE_OVERRIDE}),
        (["-nkvo"], {"-nkvo": "1"}),
        (["--no-repack"], {"--repack": "0"}),
        (["--no-op-offload"], {"-nopo": "1"}),
        (["--no-host"], {"--no-host": "1"}),
        (["-lm", "none"], {"-lm": "none"}),
        (["-ncmoe", "12"], {"-ncmoe": "12"}),
        (["--poll", "0", "--prio", "2"], {"--poll": "0", "--prio": "2"}),
        (["-ts", "3,1"], {"-ts": "3/1"}),
        (["-t", "4"], {"-t": "4"}),  # extra_args come after the lane's fields: the server's last word
    ],
)
def test_kernel_changing_extra_args_reach_llama_bench_in_its_spelling(
    extra: list[str], expected: dict[str, str]
) -> None:
    lane = LaneSpec(name="L", threads=2, extra_args=extra)
    prefill, decode, notes = bench_argv(BIN, flags(), lane, MODEL, 64, 16, 2)
    for argv in (prefill, decode):
        pairs = dict(zip(argv[13::2], argv[14::2], strict=True))
        assert {k: pairs.get(k) for k in expected} == expected
        assert len([a for a in argv if a == "-t"]) == 1  # a flag given twice would be a sweep
    assert not any("extra_args" in n for n in notes)


@pytest.mark.parametrize(
    ("extra", "note"),
    [
        (["-tb", "8"], "extra_args '-tb 8': llama-bench has no equivalent, left at its default"),
        (["--swa-full"], "extra_args '--swa-full': llama-bench has no equivalent"),
        (["--no-mmap"], "extra_args '--no-mmap': llama-bench has no equivalent"),  # b11434: no -mmp
        (["--frobnicate", "3"], "extra_args '--frobnicate 3': llama-bench has no equivalent"),
        (["-ngl", "auto"], "extra_args '-ngl auto': llama-bench has no equivalent"),
        (["--cache-ram", "0", "--samplers", "top_k"], "'--cache-ram 0', '--samplers top_k': server-side"),
    ],
)
def test_extra_args_llama_bench_cannot_take_are_named(extra: list[str], note: str) -> None:
    lane = LaneSpec(name="L", extra_args=extra)
    prefill, _, notes = bench_argv(BIN, flags(), lane, MODEL, 64, 16, 2)
    assert any(note in n for n in notes), notes
    assert extra[0] not in prefill


def test_an_option_this_llama_bench_lacks_is_named_not_passed() -> None:
    lane = LaneSpec(name="L", extra_args=["-ub", "256"])
    prefill, _, notes = bench_argv(BIN, flags() - {"-ub"}, lane, MODEL, 64, 16, 2)
    assert "-ub" not in prefill
    assert notes == ["extra_args '-ub 256': llama-bench has no equivalent, left at its default"]


def test_split_args_keeps_negative_numbers_as_values() -> None:
    assert split_args(["--cache-ram", "-1", "-nkvo", "-ub", "64"]) == [
        ("--cache-ram", ["-1"]),
        ("-nkvo", []),
        ("-ub", ["64"]),
    ]


def test_a_missing_flag_is_a_note_and_a_draft_gets_the_plain_baseline() -> None:
    old = flags() - {"-fa"}
    lane = LaneSpec(name="d", flash_attn="on", draft=Draft(kind="model"))
    prefill, _, notes = bench_argv(BIN, old, lane, MODEL, 64, 16, 2)
    assert "-fa" not in prefill
    assert any("no -fa" in n and "flash_attn" in n for n in notes)
    assert any("does not draft" in n for n in notes)


def test_the_real_json_gives_prefill_and_decode() -> None:
    prefill, decode = parse_bench_json((FIX / "b11434-270m-p64-n16.json").read_text())
    assert prefill is not None and decode is not None
    assert prefill[0] > 0 and prefill[1] >= 0 and decode[0] > 0
    assert decode[2] == [42.9158, 40.9736]  # each repetition's rate, as the file has it
    assert min(prefill[2]) <= prefill[0] <= max(prefill[2])


@pytest.mark.parametrize("text", ["{}", "not json"])
def test_output_that_is_not_a_test_list_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bench_json(text)


def test_a_list_without_tests_has_no_figures() -> None:
    assert parse_bench_json("[1, 2]") == (None, None)


def test_rows_are_picked_by_depth_from_a_depth_list() -> None:
    text = (FIX / "b11434-270m-p64-n16-d0-64.json").read_text()  # -p 64 -n 16 -d 0,64: four tests
    rows = {(r["n_prompt"], r["n_gen"], r["n_depth"]): r["avg_ts"] for r in json.loads(text)}
    prefill, decode = parse_bench_json(text, prefill_depth=0, decode_depth=64)
    assert prefill is not None and decode is not None
    assert prefill[0] == rows[(64, 0, 0)] and decode[0] == rows[(0, 16, 64)]
    prefill, decode = parse_bench_json(text, prefill_depth=64, decode_depth=0)
    assert prefill is not None and decode is not None
    assert prefill[0] == rows[(64, 0, 64)] and decode[0] == rows[(0, 16, 0)]
    assert parse_bench_json(text, prefill_depth=5, decode_depth=7) == (None, None)  # never another depth


def test_a_record_names_its_tests_in_llama_benchs_notation() -> None:
    rec = BaselineRecord(n_prompt=1150, n_gen=200, prefill_depth=0, decode_depth=1150)
    assert (rec.prefill_test, rec.decode_test) == ("pp1150 @ d0", "tg200 @ d1150")
    old = BaselineRecord.from_dict({"n_prompt": 64, "n_gen": 16, "decode_tps": 40.0})  # before depths
    assert old.decode_test == "tg16 @ d0"
