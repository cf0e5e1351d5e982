"""The seed post's tables rendered from stored results: its six rows entered as raw figures,
its model sizes, its 31B block-size sweep, a flagged lane, a failed lane and earlier rows.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.errors import BadInput
from lanebench.measure.job import summarize
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo
from lanebench.records.samples import AggregateRecord, RequestRecord
from lanebench.report.data import ReportData, load_report
from lanebench.report.fmt import Table
from lanebench.report.render import pick_format, render, report_tables
from lanebench.report.sections import sweep_groups
from lanebench.store import Store, open_store, schema
from lanebench.store.sink import StoreSink

SEED_JOB = JobSpec(n_in=1150, n_out=2000, reps=1, warmup=0, aggregate=2)
M12, M26, M31 = (
    "/models/gemma-4-12B_q4_0-it.gguf",
    "/models/gemma-4-26B_q4_0-it.gguf",
    "/models/gemma-4-31B_q4_0-it.gguf",
)
SIZES = {M12: 6_975_877_728, M26: 14_439_361_440, M31: 17_650_999_456}
HEAD = "/heads/gemma-4-{}-it-qat-assistant-MTP-Q8_0.gguf"

# name, model, kv, MTP block size (None = plain), prefill, decode, 2-slot aggregate, acceptance
SEED_ROWS: list[tuple[str, str, str, int | None, float, float, float, float | None]] = [
    ("Gemma 4 26B-A4B QAT Q4_0, plain F16 KV", M26, "f16", None, 1194.4, 59.4, 90.9, None),
    ("Gemma 4 26B-A4B QAT Q4_0, QAT MTP + Q8 KV", M26, "q8_0", 3, 729.3, 71.4, 62.5, 0.918),
    ("Gemma 4 12B QAT Q4_0, QAT MTP + Q8 KV", M12, "q8_0", 3, 539.9, 45.6, 43.5, 0.784),
    ("Gemma 4 12B QAT Q4_0, plain F16 KV", M12, "f16", None, 666.5, 25.7, 47.6, None),
    ("Gemma 4 31B QAT Q4_0, QAT MTP + F16 KV", M31, "f16", 3, 203.6, 19.1, 18.9, 0.604),
    ("Gemma 4 31B QAT Q4_0, plain Q8 KV", M31, "q8_0", None, 204.2, 11.0, 20.0, None),
]
SEED_WALLS = ["34.6 s", "29.6 s", "46.0 s", "79.5 s", "110.4 s", "187.4 s"]


def lane_dict(name: str, model: str, kv: str, block: int | None) -> dict[str, Any]:
    size = model.rsplit("gemma-4-", 1)[1].split("_")[0]
    draft = {"kind": "mtp", "path": HEAD.format(size), "block_size": block, "p_min": None} if block else None
    return {
        "name": name,
        "model": model,
        "kv": kv,
        "flash_attn": "auto",
        "slots": 2,
        "draft": draft,
        "notes": "",
    }


def seed_lane(
    name: str,
    model: str,
    kv: str,
    block: int | None,
    prefill: float,
    decode: float,
    agg: float,
    acc: float | None,
) -> LaneResult:
    """One lane with one single sample whose engine timings give the seed's rates."""
    timings: dict[str, Any] = {
        "prompt_n": 1150,
        "prompt_ms": 1150 / prefill * 1000,
        "prompt_per_second": prefill,
        "predicted_n": 2000,
        "predicted_ms": 2000 / decode * 1000,
        "predicted_per_second": decode,
    }
    if acc is not None:
        timings.update(draft_n=1000, draft_n_accepted=round(acc * 1000))
    sample = RequestRecord(kind="single", rep=0, n_in=1150, n_out=2000, timings=timings, wall_s=1.0)
    lane = LaneResult(
        name=name, lane=LaneSpec.model_validate(lane_dict(name, model, kv, block)), samples=[sample]
    )
    lane.aggregates = [AggregateRecord(rep=0, streams=2, wall_s=4000 / agg, tokens=4000)]
    return lane


def store_run(
    store: Store, run_id: str, lanes: list[LaneResult], host: str = "strix", when: str = ""
) -> None:
    """Put a run through the store's sink, as ``lanebench run`` does, with model fingerprints."""
    run = RunInfo(
        run_id=run_id,
        started_at=when or f"2026-06-{run_id[-2:]}T10:00:00+00:00",
        lanebench_version="0.1.0",
        job=SEED_JOB,
        host={"hostname": host, "cpu": "AMD Ryzen AI Max+ 395", "cpus": 32, "ram_bytes": 128 * 1024**3},
        builds={
            "/opt/atomic/llama-server": {
                "version_text": "version: 1 (build 9000, commit abc1234)",
                "build": 9000,
            }
        },
    )
    sink = StoreSink(store)
    sink.run_started(run)
    for lane in lanes:
        sink.lane_started(run, lane)
        for rec in [*lane.samples, *lane.aggregates]:
            sink.sample(run, lane.name, rec)
        summarize(lane, SEED_JOB)
        sink.lane_finished(run, lane)
    run.status = "done"
    sink.run_finished(run)
    with store.tx() as conn:
        for path, size in SIZES.items():
            data = {"path": path, "file": Path(path).name, "size_bytes": size, "arch": "gemma4"}
            data.update(
                sha256=f"{size:064x}", file_type_name="Q4_0", main_quant="Q4_0", n_params=size * 16 // 9
            )
            conn.execute(
                schema.fingerprints.insert().values(run_id=run_id, kind="model", key=path, data=data)
            )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "seed.sqlite"))


@pytest.fixture
def seed(store: Store) -> ReportData:
    store_run(store, "seed-run-02", [seed_lane(*row) for row in SEED_ROWS])
    return load_report(store, ["seed-run-02"])


def table(data: ReportData, title: str) -> Table:
    return next(t for t in report_tables(data) if t.title.startswith(title))


def column(t: Table, header: str) -> list[str]:
    i = next(i for i, h in enumerate(t.headers) if h.startswith(header))
    return [row[i] for row in t.rows]


def test_seed_rows_render_the_seed_normalized_wall_column(seed: ReportData) -> None:
    latest = table(seed, "Latest Measured Numbers")
    assert column(latest, "Normalized wall, 1150-in/2000-out") == SEED_WALLS
    assert column(latest, "Decode") == [
        "59.4 tok/s",
        "71.4 tok/s",
        "45.6 tok/s",
        "25.7 tok/s",
        "19.1 tok/s",
        "11.0 tok/s",
    ]
    assert column(latest, "2-slot aggregate") == [
        "90.9 tok/s",
        "62.5 tok/s",
        "43.5 tok/s",
        "47.6 tok/s",
        "18.9 tok/s",
        "20.0 tok/s",
    ]
    md = render(seed, "md")
    for wall in SEED_WALLS:
        assert f"| {wall} |" in md


def test_models_table_gives_bytes_and_gib(seed: ReportData) -> None:
    models = table(seed, "Models")
    sizes = dict(zip(column(models, "File"), column(models, "Size"), strict=True))
    assert sizes["gemma-4-26B_q4_0-it.gguf"] == "14,439,361,440 bytes / 13.45 GiB"
    assert sizes["gemma-4-12B_q4_0-it.gguf"] == "6,975,877,728 bytes / 6.50 GiB"
    assert sizes["gemma-4-31B_q4_0-it.gguf"] == "17,650,999,456 bytes / 16.44 GiB"
    assert set(column(models, "Role")) == {"main", "MTP head"}


def test_draft_acceptance_keeps_the_seed_percentages(seed: ReportData) -> None:
    acc = table(seed, "Draft Acceptance")
    assert column(acc, "Acceptance") == ["91.8%", "78.4%", "60.4%"]


def test_block_size_sweep_gives_one_row_per_value(store: Store) -> None:
    b2 = seed_lane("Gemma 4 31B QAT Q4_0, QAT MTP + F16 KV, B=2", M31, "f16", 2, 203.0, 16.8, 18.0, 0.76)
    store_run(store, "seed-run-03", [seed_lane(*SEED_ROWS[4]), b2])
    sweep = table(load_report(store, ["seed-run-03"]), "Sweep: draft.block_size")
    assert column(sweep, "Setting") == ["draft.block_size = 2", "draft.block_size = 3"]
    assert column(sweep, "Decode") == ["16.8 tok/s", "19.1 tok/s"]
    assert column(sweep, "Acceptance") == ["76.0%", "60.4%"]


def test_lanes_differing_in_two_fields_or_the_model_are_no_sweep() -> None:
    a = seed_lane("a", M31, "f16", 2, 1, 1, 1, 0.5)
    b = seed_lane("b", M31, "q8_0", 3, 1, 1, 1, 0.5)
    c = seed_lane("c", M31, "q8_0", 2, 1, 1, 1, 0.5)
    other_model = seed_lane("d", M26, "q8_0", 2, 1, 1, 1, 0.5)
    groups = {(key, tuple(x.name for x in lanes)) for key, lanes in sweep_groups([a, b, c, other_model])}
    assert groups == {("kv", ("a", "c")), ("draft.block_size", ("c", "b"))}


def test_a_flagged_lane_keeps_its_flag(store: Store) -> None:
    lane = seed_lane("31B MTP that never drafted", M31, "f16", 3, 200.0, 11.0, 20.0, None)
    store_run(store, "seed-run-04", [lane])
    data = load_report(store, ["seed-run-04"])
    stored = data.runs[0].lanes[0]
    assert stored.status == "flagged" and "drafted nothing" in stored.flags[0]
    assert "⚠ asked for drafting but the server drafted nothing" in column(table(data, "Latest"), "Notes")[0]
    assert column(table(data, "Draft Acceptance"), "Acceptance") == ["⚠ none drafted"]


def test_a_failed_lane_is_reported_with_its_log_tail(store: Store) -> None:
    bad = seed_lane(*SEED_ROWS[0])
    bad.samples, bad.aggregates = [], []
    bad.status, bad.error, bad.log_tail = (
        "failed",
        "engine exited with code 134",
        "loading\nGGML_ASSERT(x) failed",
    )
    store_run(store, "seed-run-05", [bad, seed_lane(*SEED_ROWS[3])])
    data = load_report(store, ["seed-run-05"])
    assert "FAILED: engine exited with code 134" in column(table(data, "Latest"), "Notes")[0]
    failures = table(data, "Failures")
    assert failures.rows == [
        ["seed-run-05", bad.name, "engine exited with code 134", "loading ⏎ GGML_ASSERT(x) failed"]
    ]


def test_context_lists_earlier_runs_and_other_hosts(store: Store) -> None:
    older = seed_lane(SEED_ROWS[0][0], M26, "f16", None, 1002.8, 44.8, 80.0, None)
    store_run(store, "seed-run-01", [older], host="other-box")
    store_run(store, "seed-run-02", [seed_lane(*SEED_ROWS[0])])
    ctx = table(load_report(store, ["seed-run-02"]), "Context Against Previous Rows")
    assert column(ctx, "Run") == ["seed-run-01", "seed-run-02 ★"]
    assert column(ctx, "Host") == ["other-box", "strix"]
    assert column(ctx, "Decode") == ["44.8 tok/s", "59.4 tok/s"]


def test_no_context_table_without_earlier_rows(seed: ReportData) -> None:
    assert not any(t.title.startswith("Context") for t in report_tables(seed))


def test_csv_has_one_row_per_lane_with_raw_medians(seed: ReportData) -> None:
    rows = list(csv.DictReader(io.StringIO(render(seed, "csv"))))
    assert [r["lane"] for r in rows] == [r[0] for r in SEED_ROWS]
    walls = [round(float(r["normalized_wall_s_median"]), 1) for r in rows]
    assert walls == [float(w.split()[0]) for w in SEED_WALLS]


def test_json_has_runs_fingerprints_samples_and_tables(seed: ReportData) -> None:
    doc = json.loads(render(seed, "json"))
    lanes = doc["runs"][0]["lanes"]
    assert lanes[0]["samples"][0]["timings"]["prompt_per_second"] == 1194.4
    assert {f["kind"] for f in doc["runs"][0]["fingerprints"]} == {"model"}
    assert "Latest Measured Numbers" in [t["title"] for t in doc["tables"]]


@pytest.mark.parametrize(
    ("fmt", "out", "expected"),
    [
        (None, None, "md"),
        (None, "r.html", "html"),
        (None, "r.CSV", "csv"),
        ("json", "r.md", "json"),
        ("HTML", None, "html"),
    ],
)
def test_format_comes_from_the_flag_or_the_suffix(fmt: str | None, out: str | None, expected: str) -> None:
    assert pick_format(fmt, Path(out) if out else None) == expected


def test_unknown_format_names_the_flag() -> None:
    with pytest.raises(BadInput, match=r"^--format: expected one of md, csv, json, html, got 'pdf'$"):
        pick_format("pdf", None)
