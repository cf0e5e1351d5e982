"""The seed report's tables: rows of strings from lane results, and their markdown."""

from __future__ import annotations

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult
from lanebench.records.samples import Stat
from lanebench.report.fmt import Table
from lanebench.report.tables import (
    draft_acceptance,
    fmt_pct,
    fmt_stat,
    latest_numbers,
    to_markdown,
    to_rich,
)

JOB = JobSpec(n_in=1150, n_out=2000, reps=3, warmup=1, aggregate=2)


def s(median: float, lo: float | None = None, hi: float | None = None, n: int = 1) -> Stat:
    return Stat(median=median, min=median if lo is None else lo, max=median if hi is None else hi, n=n)


def lane(name: str, *, draft: bool = False, notes: str = "", **kw: object) -> LaneResult:
    spec = {"name": name, "notes": notes, "slots": 2, "draft": None}
    if draft:
        spec["draft"] = {"kind": "mtp", "path": "/models/heads/mtp-gemma-4-26B.gguf", "block_size": 4}
    return LaneResult(name=name, lane=LaneSpec.model_validate(spec), **kw)  # type: ignore[arg-type]


def ok_lane() -> LaneResult:
    return lane(
        "26B-A4B Q4_0 plain",
        notes="baseline",
        load_s=7.94,
        summary={
            "prefill_tps": s(1194.4),
            "decode_tps": s(59.4, 58.9, 60.1, n=3),
            "normalized_wall_s": s(34.6, 34.3, 35.0, n=3),
            "aggregate_tps": s(88.0),
        },
    )


def test_fmt_stat_spread_only_when_more_than_one_sample() -> None:
    assert fmt_stat(s(59.4), "tok/s") == "59.4 tok/s"
    assert fmt_stat(s(59.4, 58.9, 60.1, n=3), "tok/s") == "59.4 tok/s (58.9–60.1)"
    assert fmt_stat(s(59.4, 59.4, 59.4, n=3), "tok/s") == "59.4 tok/s"  # no spread to show
    assert fmt_stat(Stat(median=1.0, min=0.5, max=2.0, n=1)) == "1.0"  # n=1: never a spread
    assert fmt_stat(None, "tok/s") == "–"
    assert fmt_stat(s(4.7412), digits=2) == "4.74"


def test_fmt_pct() -> None:
    assert fmt_pct(s(0.93452)) == "93.5%"
    assert fmt_pct(s(0.9, 0.8, 0.95, n=3)) == "90.0% (80.0–95.0)"
    assert fmt_pct(None) == "–"


def test_latest_numbers_row_and_headers() -> None:
    t = latest_numbers([ok_lane()], JOB)
    assert t.title == "Latest Measured Numbers"
    assert t.headers == [
        "Lane",
        "Load to listening",
        "Prefill",
        "Decode",
        "Normalized wall, 1150-in/2000-out",
        "2-slot aggregate",
        "Notes",
    ]
    assert t.rows == [
        [
            "26B-A4B Q4_0 plain",
            "7.9 s",
            "1194.4 tok/s",
            "59.4 tok/s (58.9–60.1)",
            "34.6 s (34.3–35.0)",
            "88.0 tok/s",
            "baseline",
        ]
    ]


def test_failed_lane_carries_its_error() -> None:
    failed = lane(
        "broken",
        notes="try this",
        status="failed",
        error="lane 'broken': llama-server exited with code 1 while loading: bad model",
    )
    (row,) = latest_numbers([failed], JOB).rows
    assert row[1:6] == ["–", "–", "–", "–", "–"]
    assert (
        row[6] == "try this; FAILED: lane 'broken': llama-server exited with code 1 while loading: bad model"
    )
    assert "FAILED: unknown error" in latest_numbers([lane("x", status="failed")], JOB).rows[0][6]


def test_flagged_lane_keeps_the_warning() -> None:
    flagged = ok_lane()
    flagged.status = "flagged"
    flagged.flags = ["asked for drafting but the server drafted nothing", "1 request(s) failed: x"]
    (row,) = latest_numbers([flagged], JOB).rows
    assert row[6] == "baseline; ⚠ asked for drafting but the server drafted nothing; ⚠ 1 request(s) failed: x"
    md = to_markdown(latest_numbers([flagged], JOB))
    assert "⚠ asked for drafting but the server drafted nothing" in md


def test_draft_acceptance_only_lists_drafting_lanes() -> None:
    assert draft_acceptance([ok_lane()]) is None
    drafting = lane(
        "26B + MTP B=4",
        draft=True,
        summary={
            "acceptance": s(0.93452),
            "mean_accepted_length": s(3.8),
            "decode_tps": s(71.4),
        },
        per_position=[0.97, 0.9, 0.81],
    )
    t = draft_acceptance([ok_lane(), drafting])
    assert t is not None
    assert t.headers[0] == "Lane" and t.title == "Draft Acceptance"
    assert t.rows == [
        [
            "26B + MTP B=4",
            "mtp: mtp-gemma-4-26B.gguf",
            "4",
            "93.5%",
            "3.80",
            "0.97 0.90 0.81",
            "71.4 tok/s",
        ]
    ]


def test_draft_acceptance_marks_a_lane_that_drafted_nothing() -> None:
    none_drafted = lane("self-draft", draft=True, status="flagged", summary={"decode_tps": s(20.0)})
    failed = lane("dead", draft=True, status="failed", error="died")
    t = draft_acceptance([none_drafted, failed])
    assert t is not None
    assert t.rows[0][3] == "⚠ none drafted"
    assert t.rows[0][5] == "–"
    assert t.rows[1][3] == "–"  # a failed lane did not measure acceptance at all


def test_draft_acceptance_of_a_lane_that_drafted_without_a_lane_figure_never_says_none_drafted() -> None:
    # seen on the device: an 8-stream-only envelope (no one-stream cell, so no lane acceptance)
    # printed "none drafted" beside a mean accepted length of 2.32 and 66.2% in every cell
    cell = CellSummary(0, 8, reps=2, requests=16)
    cell.acceptance = 0.662
    mal = {"mean_accepted_length": s(2.32)}
    envelope = lane("mtp@8", draft=True, summary=mal, per_position=[0.77, 0.55], envelope=[cell])
    counters = lane("mtp-no-counts", draft=True, summary=mal)
    t = draft_acceptance([envelope, counters])
    assert t is not None
    assert t.rows[0][3] == "per cell: see the lane's envelope (no one-stream cell)"
    assert t.rows[1][3].startswith("– (drafted: the server's counters")
    assert all("none drafted" not in row[3] for row in t.rows)


def test_to_markdown_escapes_pipes_and_newlines() -> None:
    t = Table(title="T", headers=["a|b", "c"], rows=[["x | y", "line1\nline2"]], caption="cap")
    md = to_markdown(t)
    assert md == "### T\n\n| a\\|b | c |\n|---|---|\n| x \\| y | line1 line2 |\n\n_cap_\n"


def test_to_markdown_of_a_lane_named_with_a_pipe_keeps_the_column_count() -> None:
    weird = ok_lane()
    weird.name = "A|B lane"
    weird.lane = weird.lane.model_copy(update={"notes": "n|o|t|e"})
    md = to_markdown(latest_numbers([weird], JOB))
    lines = md.splitlines()
    header, rule, row = lines[2], lines[3], lines[4]
    unescaped = [line.replace("\\|", "") for line in (header, rule, row)]
    assert {u.count("|") for u in unescaped} == {8}  # 7 columns
    assert "A\\|B lane" in row and "n\\|o\\|t\\|e" in row
    assert md.startswith("### Latest Measured Numbers\n\n")
    assert "_job: 1150 tokens in, 2000 out, 3 reps after 1 warm-up" in md


def test_to_markdown_without_caption() -> None:
    assert to_markdown(Table(title="T", headers=["h"], rows=[])) == "### T\n\n| h |\n|---|\n"


def test_to_rich_has_every_row() -> None:
    failed = lane("dead", status="failed", error="died")
    rt = to_rich(latest_numbers([ok_lane(), failed], JOB))
    assert rt.row_count == 2
    assert len(rt.columns) == 7


def test_an_engine_without_timings_shows_the_client_view_marked() -> None:
    r = lane("remote", summary={"prefill_client_tps": s(250.0), "decode_client_tps": s(20.0)})
    t = latest_numbers([r], JOB)
    row = t.rows[0]
    assert row[2] == "250.0 tok/s [client]" and row[3] == "20.0 tok/s [client]"
    assert row[4] == f"{1150 / 250 + 2000 / 20:.1f} s [client]"
    assert "[client]: the client's view" in t.caption
    engine = latest_numbers([ok_lane()], JOB)
    assert "[client]" not in engine.caption and all("[client]" not in c for c in engine.rows[0])


def test_emulated_lanes_are_marked_in_every_table() -> None:
    r = lane("emu", draft=True, summary={"acceptance": s(0.918), "decode_tps": s(71.4)})
    r.lane = r.lane.model_copy(
        update={"draft": r.lane.draft.model_copy(update={"emulate": [0.944, 0.892, 0.85]})}  # type: ignore[union-attr]
    )
    assert r.lane.emulated
    assert "emulated acceptance" in latest_numbers([r], JOB).rows[0][-1]
    assert latest_numbers([r], JOB).rows[0][0] == "emu [emulated]"  # the decode cell's row, by name
    acc = draft_acceptance([r])
    assert acc is not None and acc.rows[0][0] == "emu [emulated]" and acc.rows[0][3].endswith("[emulated]")
    assert "[emulated]" in acc.caption
    plain = lane("measured", draft=True, summary={"acceptance": s(0.918)})
    acc = draft_acceptance([plain])
    assert acc is not None and "[emulated]" not in acc.rows[0][3] and "[emulated]" not in acc.caption


def test_the_sweep_table_marks_emulated_lanes() -> None:
    from lanebench.report.sections import sweep_tables

    rows = []
    for kv in ("f16", "q8_0"):
        r = lane(f"emu {kv}", draft=True, summary={"acceptance": s(0.9), "decode_tps": s(70.0)})
        draft = r.lane.draft.model_copy(update={"emulate": [0.9, 0.8, 0.7]})  # type: ignore[union-attr]
        r.lane = r.lane.model_copy(update={"draft": draft, "kv": kv})
        rows.append(r)
    (table,) = sweep_tables(rows)
    lane_col, acc_col = table.headers.index("Lane"), table.headers.index("Acceptance")
    assert [row[lane_col] for row in table.rows] == ["emu f16 [emulated]", "emu q8_0 [emulated]"]
    assert all(row[acc_col] == "90.0% [emulated]" for row in table.rows)


def kv_lane(kv: str, decode: Stat) -> LaneResult:
    r = lane(f"t [kv={kv}]", summary={"decode_tps": decode})
    r.lane = r.lane.model_copy(update={"kv": kv})
    return r


def test_the_sweep_table_says_no_measurable_difference_inside_the_noise() -> None:
    from lanebench.report.sections import sweep_tables

    (table,) = sweep_tables(
        [kv_lane("f16", s(78.62, 77.9, 80.1, 3)), kv_lane("q8_0", s(79.41, 78.3, 81.0, 3))]
    )
    col = table.headers.index("vs fastest")
    assert [row[col] for row in table.rows] == [
        "no measurable difference: 0.990× (0.962–1.023); min–max ranges overlap, 3 vs 3 reps",
        "fastest by median only",
    ]
    assert "no measurable difference unless the min–max ranges are apart" in table.caption


def test_the_sweep_table_names_the_fastest_beyond_the_noise() -> None:
    from lanebench.report.sections import sweep_tables

    (table,) = sweep_tables([kv_lane("f16", s(80.0, 79.0, 81.0, 3)), kv_lane("q8_0", s(71.0, 70.0, 72.0, 3))])
    col = table.headers.index("vs fastest")
    assert [row[col] for row in table.rows] == [
        "fastest",
        "slower: 0.887× (0.864–0.911); min–max ranges apart, 3 vs 3 reps, p = 0.10 by chance",
    ]


def test_memory_and_placement_tables_mark_an_emulated_lane() -> None:
    from lanebench.records.memory import MemoryRecord
    from lanebench.records.placement import PlacementRecord
    from lanebench.report.memory import memory_table
    from lanebench.report.placement import placement_table

    r = lane("emu", draft=True, summary={"decode_tps": s(70.0)})
    r.lane = r.lane.model_copy(
        update={"draft": r.lane.draft.model_copy(update={"emulate": [0.9, 0.8, 0.7]})}  # type: ignore[union-attr]
    )
    r.memory = MemoryRecord(ctx=512, slots=1, weights=250.0, kv=4.5, compute=10.0)
    r.placement = PlacementRecord("layer", devices=["CPU"])
    mem, place = memory_table([r]), placement_table([r])
    assert mem is not None and mem.rows[0][0] == "emu [emulated]"
    assert place is not None and place.rows[0][0] == "emu [emulated]"
