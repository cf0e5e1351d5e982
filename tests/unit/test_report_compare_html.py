"""compare (ratio and noise verdict), plots as PNG, HTML escaping, and the results CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.test_report_seed import M26, SEED_ROWS, seed_lane, store_run

from lanebench.config.lanes import LaneSpec
from lanebench.records.lane import LaneResult
from lanebench.records.samples import Stat
from lanebench.report.compare import compare_rows, compare_table, verdict
from lanebench.report.data import load_report
from lanebench.report.html import to_html
from lanebench.report.plots import all_plots, save_plots
from lanebench.report.render import report_tables
from lanebench.store import open_store

HOSTILE = '<img src=x onerror=alert(1)> & "quotes" $x$'
APART = "min–max ranges apart, 3 vs 3 reps, p = 0.10 by chance"
B_BETTER, B_WORSE = f"B better ({APART})", f"B worse ({APART})"


def s(median: float, lo: float, hi: float, n: int = 3) -> Stat:
    return Stat(median, lo, hi, n)


@pytest.mark.parametrize(
    ("a", "b", "better", "expected"),
    [
        (s(50, 48, 52), s(51, 49, 53), 1, "no measurable difference (min–max ranges overlap, 3 vs 3 reps)"),
        (s(50, 48, 52), s(60, 58, 62), 1, B_BETTER),
        (s(50, 48, 52), s(60, 58, 62), -1, B_WORSE),
        (s(50, 48, 52), s(40, 39, 41), 1, B_WORSE),
        (s(50, 50, 50, 1), s(60, 60, 60, 1), 1, "no spread to judge (1 sample each)"),
        (
            s(50, 48, 52, 2),
            s(60, 58, 62, 2),
            1,
            "no measurable difference (min–max ranges apart, but 2 vs 2 reps cannot show it: "
            "p = 0.33 by chance > 0.10)",
        ),
        (None, s(1, 1, 1), 1, "–"),
    ],
)
def test_verdict_compares_against_the_runs_own_spread(
    a: Stat | None, b: Stat, better: int, expected: str
) -> None:
    assert verdict(a, b, better) == expected


def _lane(name: str, decode: Stat, wall: Stat) -> LaneResult:
    return LaneResult(
        name=name, lane=LaneSpec(name=name), summary={"decode_tps": decode, "normalized_wall_s": wall}
    )


def test_compare_rows_ratio_per_lane_and_lanes_in_one_run_only() -> None:
    a = [_lane("x", s(50, 48, 52), s(40, 39, 41)), _lane("gone", s(1, 1, 1), s(1, 1, 1))]
    b = [_lane("x", s(60, 58, 62), s(34, 33, 35)), _lane("new", s(1, 1, 1), s(1, 1, 1))]
    rows = compare_rows(a, b)
    decode = next(r for r in rows if r.get("figure") == "decode_tps")
    wall = next(r for r in rows if r.get("figure") == "normalized_wall_s")
    assert decode["ratio"] == pytest.approx(1.2) and decode["verdict"] == B_BETTER
    assert wall["ratio"] == pytest.approx(0.85) and wall["verdict"] == B_BETTER
    assert {"lane": "gone", "only_in": "A"} in rows and {"lane": "new", "only_in": "B"} in rows
    rows += compare_rows(
        [LaneResult(name="d", lane=LaneSpec(name="d"), summary={"acceptance": s(0.5, 0.4, 0.6)})],
        [LaneResult(name="d", lane=LaneSpec(name="d"), summary={"acceptance": s(0.9, 0.85, 0.95)})],
    )
    table = compare_table("A1", "B1", rows)
    assert [
        "d",
        "Acceptance",
        "50.0% (40.0–60.0)",
        "90.0% (85.0–95.0)",
        "1.800 (1.417–2.375)",
        B_BETTER,
    ] in table.rows
    assert [
        "x",
        "Decode",
        "50.0 tok/s (48.0–52.0)",
        "60.0 tok/s (58.0–62.0)",
        "1.200 (1.115–1.292)",
        B_BETTER,
    ] in table.rows


@pytest.fixture
def hostile_db(tmp_path: Path) -> str:
    db = str(tmp_path / "h.sqlite")
    store = open_store(db)
    lanes = [seed_lane(*SEED_ROWS[i]) for i in range(6)]
    lanes[0].name = HOSTILE
    store_run(
        store,
        "run-01",
        [seed_lane(*SEED_ROWS[0]), seed_lane(*SEED_ROWS[1])],
        when="2026-06-01T00:00:00+00:00",
    )
    store_run(store, "run-02", lanes, when="2026-06-02T00:00:00+00:00")
    return db


def test_plots_are_pngs_and_cover_bars_acceptance_scatter_history(hostile_db: str, tmp_path: Path) -> None:
    data = load_report(open_store(hostile_db), ["run-02"])
    plots = all_plots(data)
    assert [name for name, _, _ in plots] == [
        "lanes-1.png",
        "acceptance-vs-block.png",
        "prefill-vs-decode.png",
        "history.png",
    ]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000 for _, _, png in plots)
    written = save_plots(data, tmp_path / "plots")
    assert sorted(p.name for p in written) == sorted(name for name, _, _ in plots)


def test_html_escapes_every_stored_string(hostile_db: str) -> None:
    data = load_report(open_store(hostile_db), ["run-02"])
    page = to_html(data, report_tables(data))
    assert "<img src=x" not in page and "<script" not in page.lower()
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quotes&quot;" in page
    assert page.count('src="data:image/png;base64,') == 4
    assert "http://" not in page and "https://" not in page


def lanebench(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_runs_report_compare(hostile_db: str, tmp_path: Path) -> None:
    runs = lanebench("runs", "--json", db=hostile_db)
    assert runs.returncode == 0, runs.stderr
    assert [r["run_id"] for r in json.loads(runs.stdout)] == ["run-02", "run-01"]

    out = tmp_path / "r.html"
    rep = lanebench("report", "run-02", "-o", str(out), "--plots", str(tmp_path / "png"), db=hostile_db)
    assert rep.returncode == 0, rep.stderr
    assert out.read_text().startswith("<!doctype html>")
    assert len(list((tmp_path / "png").glob("*.png"))) == 4

    md = lanebench("report", "--format", "md", db=hostile_db)  # latest run by default
    assert "| 34.6 s |" in md.stdout and "run run-02" in md.stdout

    cmp = lanebench("compare", "run-01", "run-02", "--json", db=hostile_db)
    rows = json.loads(cmp.stdout)["rows"]
    same = next(r for r in rows if r.get("figure") == "decode_tps" and r["lane"] == SEED_ROWS[1][0])
    assert same["ratio"] == 1.0 and same["verdict"] == "no spread to judge (1 sample each)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "nope"], "lanebench: error: unknown run id 'nope' (see lanebench runs)"),
        (["compare", "run-01", "nope"], "lanebench: error: unknown run id 'nope' (see lanebench runs)"),
        (["report", "--format", "pdf"], "lanebench: error: --format: expected one of md, csv, json, html"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(hostile_db: str, args: list[str], message: str) -> None:
    proc = lanebench(*args, db=hostile_db)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message) and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_newer_database_in_one_line(hostile_db: str) -> None:
    import sqlite3

    from lanebench.store import schema

    con = sqlite3.connect(hostile_db)
    newer = schema.latest_version() + 1
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
    con.commit()
    con.close()
    proc = lanebench("runs", db=hostile_db)
    assert proc.returncode == 2 and "written by a newer lanebench" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_report_on_a_run_with_failed_lanes_warns_and_renders(tmp_path: Path) -> None:
    db = str(tmp_path / "f.sqlite")
    bad = seed_lane("broken lane", M26, "f16", None, 1, 1, 1, None)
    bad.samples, bad.aggregates, bad.status, bad.error = [], [], "failed", "engine died"
    store_run(open_store(db), "run-07", [bad])
    proc = lanebench("report", "run-07", "--format", "md", db=db)
    assert proc.returncode == 0
    assert "lane 'broken lane' failed" in proc.stderr and "### Failures" in proc.stdout


def test_every_compare_row_of_an_emulated_lane_is_marked() -> None:
    """Decode as well as acceptance: an emulated lane's speeds are at a chosen acceptance."""
    from lanebench.config.lanes import Draft

    emu = LaneSpec(name="d", draft=Draft(kind="model", block_size=2, emulate=[0.9]))
    summary = {"acceptance": s(0.9, 0.85, 0.95), "decode_tps": s(50, 48, 52)}
    a = [LaneResult(name="d", lane=emu, summary=summary)]
    b = [LaneResult(name="d", lane=emu, summary={**summary, "decode_tps": s(60, 58, 62)})]
    rows = compare_rows(a, b)
    assert [r["figure"] for r in rows] == ["decode_tps", "acceptance"]
    assert all(r["emulated"] for r in rows)
    table = compare_table("A", "B", rows)
    assert [row[0] for row in table.rows] == ["d [emulated]", "d [emulated]"]
    assert "[emulated]: emulated acceptance" in table.caption
    plain = [LaneResult(name="d", lane=LaneSpec(name="d", draft=Draft(kind="model")), summary=summary)]
    rows = compare_rows(plain, plain)
    assert not any(r["emulated"] for r in rows)
    assert [row[0] for row in compare_table("A", "B", rows).rows] == ["d", "d"]
    from lanebench.report.render import _acceptance_source

    assert [
        _acceptance_source(x) for x in (a[0], plain[0], LaneResult(name="p", lane=LaneSpec(name="p")))
    ] == [
        "emulated",
        "measured",
        "",
    ]


def test_speed_vs_quality_plot_is_drawn_for_lanes_with_both_figures() -> None:
    from lanebench.records.quality import QualityRecord, QualityStatus
    from lanebench.report.plots import speed_vs_quality

    def q(name: str, kld: float, decode: float) -> LaneResult:
        r = LaneResult(name=name, lane=LaneSpec(name=name), summary={"decode_tps": s(decode, decode, decode)})
        r.quality = QualityRecord(status=QualityStatus.MEASURED, kld_mean=kld)
        return r

    png = speed_vs_quality([q("f16", 0.0, 40.0), q("q8_0", 0.007, 38.0), q("q4_0", 0.11, 41.0)])
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert speed_vs_quality([LaneResult(name="x", lane=LaneSpec(name="x"))]) is None
