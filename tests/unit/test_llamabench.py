"""The kernel view: llama-bench's flags from its real --help, argv from a lane, its JSON parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.engines.llamabench import bench_argv, parse_bench_json, parse_flags
from lanebench.lanes import Draft, LaneSpec

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
    argv, notes = bench_argv(BIN, flags(), lane, MODEL, 1150, 200, 3)
    assert argv[:11] == [str(BIN), "-m", str(MODEL), "-p", "1150", "-n", "200", "-r", "3", "-o", "json"]
    pairs = dict(zip(argv[11::2], argv[12::2], strict=True))
    assert pairs == {"-t": "2", "-ngl": "99", "-ctk": "q8_0", "-ctv": "q8_0", "-fa": "on"}
    assert notes == []


def test_a_missing_flag_is_a_note_and_a_draft_gets_the_plain_baseline() -> None:
    old = flags() - {"-fa"}
    lane = LaneSpec(name="d", flash_attn="on", draft=Draft(kind="model"))
    argv, notes = bench_argv(BIN, old, lane, MODEL, 64, 16, 2)
    assert "-fa" not in argv
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
