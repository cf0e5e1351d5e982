"""The pure parts of ``bench/crosscheck.py``: its llama-bench argv and JSON parsing, its server
argv and lanes file, its reading of a stream, lanebench's side read from a run document, and the
rows with ratio and verdict. (The script itself is run against the real build by hand: it is a
report, see docs/measurement.md.)"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from lanebench.analysis.attribution import CONTROL, CONTROL_AFTER, Arm, AttributionRecord
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import parse_lanes
from lanebench.records.busy import BusyRecord
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord, Stat

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


core = _load("crosscheck_core")
rows = _load("crosscheck_rows")
script = _load("crosscheck")

S = core.Settings(model="/m/model.gguf", n_in=256, n_out=64, depths=(0, 4096), reps=3)


def bench_row(n_prompt: int, n_gen: int, depth: int | None, avg: float, samples: list[float]) -> dict:
    row = {"n_prompt": n_prompt, "n_gen": n_gen, "avg_ts": avg, "stddev_ts": 1.0, "samples_ts": samples}
    if depth is not None:
        row["n_depth"] = depth
    return row


def test_points_reach_depth_through_the_prompt_and_say_so():
    p0, p1 = core.points(S)
    assert (p0.depth, p0.n_in, p0.n_out) == (0, 256, 64)
    assert (p1.depth, p1.n_in) == (4096, 4352)
    assert "tg64 @ d4352" in p1.meaning() and "pp4352 @ d0" in p1.meaning()
    assert "not 256 new tokens after 4096" in p1.meaning()
    assert "tg64 @ d256" in p0.meaning() and "new tokens after" not in p0.meaning()
    assert p1.ctx % 256 == 0 and p1.ctx >= 4352 + 64


@pytest.mark.parametrize("depth, decode_d", [(0, "256"), (4096, "4352")])
def test_bench_argvs_prefill_at_zero_decode_after_the_prompt(depth, decode_d):
    p = core.Point(depth, depth + 256, 64)
    prefill, decode = core.bench_argvs("/b/llama-bench", S, p)
    assert prefill[:9] == ["/b/llama-bench", "-m", "/m/model.gguf", "-p", str(p.n_in), "-n", "0", "-d", "0"]
    assert decode[3:9] == ["-p", "0", "-n", "64", "-d", decode_d]
    for argv in (prefill, decode):
        assert argv[argv.index("-o") + 1] == "json" and argv[argv.index("-r") + 1] == "3"


def test_bench_argvs_carry_the_lane_flags_and_bench_extra_last():
    s = core.Settings(model="m", threads=4, ngl=99, kv="q8_0", flash_attn="on", bench_extra=("-ub", "256"))
    prefill, _ = core.bench_argvs("b", s, core.points(s)[0])
    assert prefill[-2:] == ["-ub", "256"]
    for flag, value in (("-t", "4"), ("-ngl", "99"), ("-ctk", "q8_0"), ("-ctv", "q8_0"), ("-fa", "on")):
        assert prefill[prefill.index(flag) + 1] == value


def test_server_argv_binds_localhost_and_puts_the_switch_last():
    p = core.points(S)[1]
    argv = core.server_argv("/b/llama-server", S, p, 8123, ["-cram", "0"])
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("-c") + 1] == str(p.ctx) and argv[argv.index("-np") + 1] == "1"
    assert argv[-2:] == ["-cram", "0"]


def test_mirrored_argv_replaces_only_the_port():
    theirs = ["srv", "-m", "m", "--port", "1", "--metrics", "-lv", "4"]
    assert core.mirrored_argv(theirs, 2, ["--samplers", "temperature"]) == [
        "srv", "-m", "m", "--port", "2", "--metrics", "-lv", "4", "--samplers", "temperature"
    ]  # fmt: skip


def test_argv_difference_names_what_only_one_server_had():
    mine = ["a", "-m", "m", "--port", "5", "-c", "512"]
    theirs = ["b", "-m", "m", "--port", "9", "-c", "512", "--metrics", "-lv", "4"]
    assert core.argv_difference(mine, theirs) == (["--metrics", "-lv", "4"], [])


def test_lanes_toml_is_a_lane_lanebench_accepts_with_the_same_ctx():
    s = core.Settings(model="/m/model.gguf", threads=2, ngl=999, extra=("-ub", "256"))
    p = core.points(s)[1]
    (lane,) = parse_lanes(tomllib.loads(core.lanes_toml(s, p)), "crosscheck", Path("/"))
    assert (lane.ctx, lane.slots, lane.threads, lane.gpu_layers) == (p.ctx, 1, 2, 999)
    assert lane.extra_args == ["-ub", "256"] and str(lane.model) == "/m/model.gguf"


@pytest.mark.parametrize("attribute", [True, False])
def test_lanebench_argv(attribute):
    p = core.points(S)[1]
    argv = core.lanebench_argv("py", "l.toml", "o.json", "logs", S, p, attribute)
    assert argv[:5] == ["py", "-m", "lanebench", "run", "l.toml"]
    assert argv[argv.index("--n-in") + 1] == "4352" and argv[argv.index("--aggregate") + 1] == "0"
    assert "--baseline" in argv and "--no-db" in argv
    assert ("--attribute" in argv) is attribute


def test_parse_bench_picks_the_test_at_its_depth():
    text = json.dumps(
        [bench_row(256, 0, 0, 500.0, [490.0, 510.0]), bench_row(0, 64, 256, 60.0, [59.0, 61.5])]
    )
    assert core.parse_bench(text, 256, 0, 0) == core.Figure(500.0, 490.0, 510.0, 2)
    assert core.parse_bench(text, 0, 64, 256) == core.Figure(60.0, 59.0, 61.5, 2)


def test_parse_bench_reads_a_row_without_n_depth_as_depth_zero():
    assert core.parse_bench(json.dumps([bench_row(0, 64, None, 70.0, [])]), 0, 64, 0).value == 70.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "printed no JSON"),
        (json.dumps({"a": 1}), "not a list"),
        (json.dumps([bench_row(0, 64, 0, 70.0, [70.0])]), "no tg64 @ d256 test"),
    ],
)
def test_parse_bench_says_what_is_missing(text, message):
    with pytest.raises(ValueError, match=message):
        core.parse_bench(text, 0, 64, 256)


def ev(n: int, tokens: list[int] | None = None, **more: object) -> dict:
    return {"content": "x" if tokens else "", "tokens": tokens or [], "tokens_predicted": n, **more}


def test_read_stream_counts_the_servers_running_count_not_chunks():
    timings = {"prompt_n": 8, "prompt_ms": 90.0, "predicted_n": 7}
    events = [
        (0.100, ev(1, [11])),
        (0.200, ev(4, [12, 13, 14])),  # three tokens in one chunk
        (0.300, ev(5, [])),  # a token held back as incomplete UTF-8: no id listed
        (0.400, ev(7, [16, 17])),
        (0.400, {**ev(7), "stop": True, "timings": timings}),
    ]
    r = core.read_stream(events)
    assert r.ok and r.tokens == 7 and r.listed_tokens == 6 and r.chunks == 3
    assert r.ttft_s == pytest.approx(0.1)
    assert r.decode_tps == pytest.approx(6 / 0.3)  # tokens after the first over their time
    assert r.prefill_tps(8) == pytest.approx(80.0)
    assert r.outside_ms() == pytest.approx(10.0)


@pytest.mark.parametrize(
    "events, error",
    [([(0.1, {"error": {"message": "boom"}})], "boom"), ([(0.1, ev(0))], "carried no token")],
)
def test_read_stream_failures_are_data(events, error):
    r = core.read_stream(events)
    assert not r.ok and error in r.error and r.prefill_tps(8) is None


def test_sse_events_keep_data_lines_only():
    lines = [
        (0.1, b'data: {"tokens_predicted": 1}\n'),
        (0.1, b"\n"),
        (0.2, b": ping\n"),
        (0.3, b"data: [DONE]\n"),
    ]
    assert core.sse_events(lines) == [(0.1, {"tokens_predicted": 1})]


def test_prompt_slices_have_the_length_asked_and_differ():
    ids = list(range(5000))
    a, b = core.prompt_slice(ids, 1, 4096), core.prompt_slice(ids, 2, 4096)
    assert len(a) == len(b) == 4096 and a != b and a[0] == 997


def test_completion_body_never_reuses_the_prompt():
    body = core.completion_body([1, 2], 64)
    assert body["cache_prompt"] is False and body["n_predict"] == 64 and body["stream"] is True


def test_change_of_is_percent_and_ms_saved():
    pct, ms = core.change_of(core.Figure(500, 500, 500, 3), core.Figure(1000, 1000, 1000, 3), 1000)
    assert pct == pytest.approx(100.0) and ms == pytest.approx(1000.0)


def lane_doc(attribution: AttributionRecord | None = None) -> dict:
    """A run document as ``lanebench run --json`` writes it, for one lane."""

    def req(ttft: float, prompt_ms: float) -> RequestRecord:
        return RequestRecord(
            kind="single", rep=0, n_in=256, n_out=64, ttft_s=ttft, timings={"prompt_ms": prompt_ms}
        )

    result = LaneResult(
        name="crosscheck",
        lane=LaneSpec(name="crosscheck"),
        argv=["srv", "-m", "m", "--port", "1", "--metrics"],
        samples=[req(0.5, 480.0), req(0.6, 560.0), req(0.7, 640.0)],
        summary={"prefill_tps": Stat(500.0, 480.0, 520.0, 3), "decode_client_tps": Stat(60.0, 59.0, 61.0, 3)},
        baseline={"prefill_tps": 600.0, "prefill_samples": [590.0, 610.0], "note": "n"},
        busy=BusyRecord(figures={"decode_client_tps": 0.8}),
        attribution=attribution.to_dict() if attribution else None,
    )
    return {"run": {}, "lanes": [result.to_dict()]}


def test_lanebench_side_reads_its_figures_and_busy_marks():
    side = rows.lanebench_side(json.loads(json.dumps(lane_doc())), "x.json")
    assert side.figures["engine_prefill"] == core.Figure(500.0, 480.0, 520.0, 3)
    assert side.figures["kernel_prefill"] == core.Figure(600.0, 590.0, 610.0, 2)
    assert side.figures["kernel_decode"] is None and side.figures["engine_decode"] is None
    assert side.figures["outside_ms"].value == pytest.approx(40.0)  # ttft − prompt_ms, median
    assert side.marks == {"client_decode": "[busy: 0.80 cores]"}
    assert side.argv[0] == "srv" and side.notes == ["lanebench's kernel view: n"]


def test_lanebench_side_refuses_what_is_not_a_run_document():
    with pytest.raises(ValueError, match=r"x\.json: not a lanebench run document"):
        rows.lanebench_side({"lanes": []}, "x.json")


def attr_req(ttft: float, rep: int) -> RequestRecord:
    return RequestRecord(
        kind="single", rep=rep, n_in=1000, n_out=10, ttft_s=ttft, stream_tokens=10, decode_stream_s=0.1,
        timings={"prompt_ms": 400.0, "prompt_per_second": 2500.0, "predicted_per_second": 100.0},
    )  # fmt: skip


def test_lanebench_effects_take_client_prefill_and_where_it_was_named():
    rec = AttributionRecord(n_in=1000, n_out=10, reps=3)
    rec.arms = [
        Arm(CONTROL, "c", samples=[attr_req(t, i) for i, t in enumerate((0.80, 0.82, 0.84))]),
        Arm("prompt_cache", "p", ["-cram", "0"],
            samples=[attr_req(t, i) for i, t in enumerate((0.41, 0.42, 0.43))]),
        Arm(CONTROL_AFTER, "c", samples=[attr_req(t, i) for i, t in enumerate((0.81, 0.83, 0.85))]),
    ]  # fmt: skip
    (e,) = rows.lanebench_effects(rec)
    assert (e.name, e.change) == ("prompt_cache", "-cram 0")
    control = statistics.median(1000 / t for t in (0.80, 0.82, 0.84, 0.81, 0.83, 0.85))
    assert e.control == core.Figure(pytest.approx(control), 1000 / 0.85, 1000 / 0.80, 6)
    assert e.variant == core.Figure(pytest.approx(1000 / 0.42), 1000 / 0.43, 1000 / 0.41, 3)
    assert e.named == "prefill engine → client"  # the time outside the prompt timer moved
    _pct, ms = e.pct_ms(1000)
    assert ms == pytest.approx(1000 * (1000 / control - 0.42))


def test_point_rows_pair_every_figure_and_every_suspect():
    p = core.points(S)[0]
    f = core.Figure
    lb = rows.Side(figures={"engine_decode": f(50.0, 49.0, 51.0, 3)})
    lb.effects = [
        rows.Effect("prompt_cache", "-cram 0", f(500, 0, 0, 3), f(1000, 0, 0, 3), "prefill engine → client")
    ]
    own = rows.Side(figures={"engine_decode": f(48.0, 47.0, 49.0, 3)})
    own.effects = [rows.Effect("prompt_cache", "-cram 0", f(400, 0, 0, 3), f(800, 0, 0, 3))]
    got = rows.point_rows(lb, own, p, 3)
    assert [r.figure for r in got][:7] == [label for _k, label, _u in rows.FIGURES]
    decode = got[3]
    assert decode.ratio() == pytest.approx(50 / 48) and "agree within 10%" in rows.verdict(decode, 10)
    effect = got[-1]
    assert effect.figure == "client prefill with -cram 0" and effect.pct == (
        pytest.approx(100),
        pytest.approx(100),
    )
    assert effect.lanebench.value == pytest.approx(256.0) and effect.own.value == pytest.approx(320.0)
    assert rows.verdict(effect, 10) == "same direction; lanebench's saving is 0.80× the independent one"
    assert rows.verdict(got[0], 10) == "no lanebench figure"


F = core.Figure


@pytest.mark.parametrize(
    "lb, own, expected",
    [
        (F(105, 100, 110, 3), F(100, 95, 104, 3), "agree within 10% (+5.0%)"),
        (
            F(130, 90, 150, 3),
            F(100, 95, 104, 3),
            "lanebench +30.0%: the repetitions' ranges overlap (noise?)",
        ),
        (F(130, 125, 135, 3), F(100, 95, 104, 3), "lanebench +30.0%, beyond both ranges"),
        (F(130, 125, 135, 3), None, "no independent figure"),
    ],
)
def test_verdict_of_a_figure(lb, own, expected):
    assert rows.verdict(rows.Row("x", "tok/s", "", lb, own), 10) == expected


@pytest.mark.parametrize(
    "pct, expected",
    [
        ((3.0, -2.0), "neither side moved client prefill by more than 10%"),
        ((40.0, -25.0), "opposite directions (+40.0% against -25.0%)"),
    ],
)
def test_verdict_of_an_effect(pct, expected):
    row = rows.Row("x", "ms saved", "", F(10, 10, 10, 3), F(-5, -5, -5, 3), pct=pct)
    assert rows.verdict(row, 10) == expected


def test_markdown_table_has_one_line_per_row_and_escapes_pipes():
    row = rows.Row("a|b", "tok/s", "how", F(1.0, 1.0, 1.0, 1), F(1.0, 1.0, 1.0, 1))
    text = rows.markdown_table([row, row], 10)
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| figure | lanebench | independent | ratio")
    assert "a\\|b" in lines[2] and "| 1.000 |" in lines[2]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--depths", "0,x"], "argument --depths: expected integers like 0,4096, got '0,x'"),
        (["--reps", "0"], "argument --reps: expected a positive integer, got '0'"),
        (["--model", __file__], "--model"),
        (["--model", __file__.replace(".py", ".nope")], "expected a GGUF file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    try:
        rc = script.main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1
