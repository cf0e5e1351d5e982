"""Speculative lanes get a verdict, never a figure: greedy ids compared token by token, the first
divergence found, the plain partner matched on everything that can change the target's
output, and every consumer (records read back, table, plot data, tune's budget) treating a lane
without a measured KLD as unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lanebench.config.lanes import LaneSpec
from lanebench.orchestration.tune import within_kld
from lanebench.quality.assess import Assessor, QualityOptions
from lanebench.quality.flags import parse_options
from lanebench.quality.greedy import check_greedy, first_divergence, plain_partner, verdict, verdict_record
from lanebench.quality.select import QualityLane
from lanebench.records.lane import LaneResult
from lanebench.records.quality import FIGURE_FIELDS, SPECULATIVE, QualityRecord, QualityStatus
from lanebench.records.samples import RequestRecord, Stat
from lanebench.report.plots import speed_vs_quality
from lanebench.report.quality import left_out, quality_table, speed_quality_points

FIX = Path(__file__).resolve().parents[1] / "fixtures"
OPTIONS = parse_options((FIX / "help" / "b11434.help").read_text())
BIN, MODEL = Path("/opt/b11434/llama-server"), Path("/models/m.gguf")


def rq(kind: str, ids: list[int] | None, rep: int = 0, ok: bool = True) -> RequestRecord:
    return RequestRecord(kind=kind, rep=rep, n_in=1, n_out=len(ids or []), ok=ok, token_ids=ids)  # type: ignore[arg-type]


def run_of(*seqs: list[int]) -> list[RequestRecord]:
    """A warm-up then single repetitions, one per id list, then a concurrent request."""
    out = [rq("warmup" if i == 0 else "single", list(s), rep=max(0, i - 1)) for i, s in enumerate(seqs)]
    return [*out, rq("aggregate", [9, 9, 9])]


# --- token by token ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "k"),
    [
        ([1, 2, 3], [1, 2, 3], None),
        ([1, 2, 3], [7, 2, 3], 0),
        ([1, 2, 3, 4], [1, 2, 5, 4], 2),
        ([1, 2], [1, 2, 3], 2),  # one ended early: they differ where it ended
        ([], [], None),
    ],
)
def test_first_divergence(a: list[int], b: list[int], k: int | None) -> None:
    assert first_divergence(a, b) == k
    assert first_divergence(b, a) == k


def test_identical_ids_are_lossless_with_every_token_counted() -> None:
    plain = run_of([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12])
    spec = run_of([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12])
    spec[-1] = rq("aggregate", [0])  # concurrent requests may batch differently: never compared
    check = check_greedy(spec, plain)
    assert (check.identical, check.requests, check.tokens, check.same) == (True, 3, 12, 12)
    rec = verdict_record("plain", check)
    assert rec.status == QualityStatus.LOSSLESS
    assert verdict(rec) == "lossless: 12 of 12 greedy tokens identical against 'plain' (3 requests)"


def test_the_first_divergence_names_request_and_token() -> None:
    plain = run_of([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12])
    spec = run_of([1, 2, 3, 4], [5, 6, 70, 80], [9, 10, 11, 0])
    check = check_greedy(spec, plain)
    where = (check.identical, check.first_request, check.first_token, check.first_label)
    assert where == (False, 2, 3, "single rep 1")
    assert (check.same, check.tokens, check.differing) == (4 + 2 + 3, 12, 2)
    rec = verdict_record("plain", check)
    assert rec.status == QualityStatus.NOT_LOSSLESS and rec.greedy is False
    assert verdict(rec).startswith(
        "not lossless: first divergence at token 3 of request 2 (single rep 1) against 'plain'; "
        "9 of 12 tokens identical up to each request's divergence, 2 of 3 requests differ"
    )


@pytest.mark.parametrize(
    ("spec", "plain", "why"),
    [
        ([rq("single", None)], [rq("single", [1])], "no sequential request of both lanes carried token ids"),
        ([rq("single", [1], ok=False)], [rq("single", [1])], "carried token ids"),
        ([], [rq("single", [1])], "no sequential request of both lanes was measured"),
    ],
)
def test_nothing_to_compare_is_unchecked_not_a_pass(
    spec: list[RequestRecord], plain: list[RequestRecord], why: str
) -> None:
    check = check_greedy(spec, plain)
    assert check.identical is None and why in check.why
    rec = verdict_record("plain", check)
    assert rec.status == QualityStatus.UNCHECKED and verdict(rec) == f"unchecked: {check.why}"


@pytest.mark.parametrize("status", list(SPECULATIVE))
def test_a_verdict_carries_no_figure(status: QualityStatus) -> None:
    ids = [1, 2] if status != QualityStatus.NOT_LOSSLESS else [1, 3]
    check = None if status == QualityStatus.UNCHECKED else check_greedy(run_of(ids), run_of([1, 2]))
    rec = verdict_record("plain", check, "why")
    assert rec.status == status
    assert all(getattr(rec, f) is None for f in FIGURE_FIELDS) and not rec.has_figures


@pytest.mark.parametrize(
    ("old", "status"),
    [
        ({"greedy": None}, QualityStatus.UNCHECKED),
        ({"greedy": False}, QualityStatus.NOT_LOSSLESS),
        ({"greedy": True, "greedy_checked": 3}, QualityStatus.LOSSLESS),
    ],
)
def test_records_written_before_verdicts_lose_the_kld_they_never_measured(
    old: dict[str, Any], status: QualityStatus
) -> None:
    """lanebench 0.x wrote a drafting lane as ``lossless`` with its target's figures."""
    d = {"status": "lossless", "reference": "plain", "tokens": 510, "ctx": 512, "ppl": 8.66, "kld_mean": 0.0}
    d.update(old)
    rec = QualityRecord.from_dict(d)
    assert rec.status == status and rec.kld_mean is None and rec.ppl is None and rec.tokens == 0


# --- the plain partner --------------------------------------------------------------------------
def ql(name: str, server_bin: Path = BIN, model: Path = MODEL, **kw: Any) -> QualityLane:
    return QualityLane(LaneSpec.model_validate({"name": name, **kw}), server_bin, model)


DRAFT = {"kind": "model"}


def test_the_partner_serves_the_same_target() -> None:
    spec = ql("d", draft=DRAFT, kv="q8_0", flash_attn="on", threads=2)
    lanes = [ql("p-f16", threads=2), ql("p-q8", kv="q8_0", flash_attn="on", threads=2), spec]
    partner, why = plain_partner(spec, lanes, OPTIONS)
    assert partner is not None and partner.name == "p-q8" and why == ""


@pytest.mark.parametrize(
    ("field", "plain", "spec"),
    [
        ("kv", {"kv": "q8_0"}, {}),
        ("flash_attn", {"flash_attn": "on"}, {"flash_attn": "off"}),
        ("gpu_layers", {"gpu_layers": 10}, {"gpu_layers": 99}),
        ("threads", {"threads": 2}, {"threads": 4}),
        ("ctx", {"ctx": 4096}, {"ctx": 8192}),
        ("slots", {"slots": 1}, {"slots": 2}),
        ("split_mode", {"split_mode": "row"}, {"split_mode": "layer"}),
        ("tensor_split", {"tensor_split": [1, 1]}, {"tensor_split": [3, 1]}),
        ("main_gpu", {"main_gpu": 0}, {"main_gpu": 1}),
        ("devices", {"devices": ["CUDA0"]}, {"devices": ["CUDA1"]}),
        ("rpc", {"rpc": ["h:1"]}, {}),
        ("rpc_local", {"rpc_local": [{}]}, {}),
        ("engine", {"engine": "openai", "url": "http://h"}, {}),
        ("extra_args", {"extra_args": ["--rope-freq-base", "1"]}, {}),
        ("env", {"env": {"GGML_CUDA_FORCE_MMQ": "1"}}, {}),
    ],
)
def test_a_plain_lane_that_differs_in_any_target_field_is_no_partner(
    field: str, plain: dict[str, Any], spec: dict[str, Any]
) -> None:
    lanes = [ql("p", **plain), ql("d", draft=DRAFT, **spec)]
    partner, why = plain_partner(lanes[1], lanes, OPTIONS)
    assert partner is None
    assert why.startswith("no plain lane serves the same target (closest: 'p', which differs in ")
    assert f"{field} (" in why


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("model", {"model": Path("/models/q8.gguf")}),
        ("server_bin", {"server_bin": Path("/opt/cuda/llama-server")}),
    ],
)
def test_another_model_file_or_build_is_no_partner(field: str, other: dict[str, Any]) -> None:
    lanes = [ql("p", **other), ql("d", draft=DRAFT)]
    partner, why = plain_partner(lanes[1], lanes, OPTIONS)
    assert partner is None and f"{field} (" in why


@pytest.mark.parametrize(
    ("spec", "plain"),
    [
        ({"extra_args": ["--spec-draft-p-min", "0.5", "--spec-draft-n-min", "1"]}, {}),
        ({"env": {"LLAMA_ARG_SPEC_DRAFT_N_MAX": "4"}}, {}),
        ({"extra_args": ["--cache-ram", "0"]}, {"extra_args": ["--cache-ram", "0"]}),
    ],
)
def test_speculative_settings_do_not_change_the_target(spec: dict[str, Any], plain: dict[str, Any]) -> None:
    lanes = [ql("p", **plain), ql("d", draft=DRAFT, **spec)]
    assert plain_partner(lanes[1], lanes, OPTIONS)[0] is lanes[0]


def test_a_lane_drafting_through_extra_args_is_no_partner_and_has_one() -> None:
    lanes = [ql("ngram", extra_args=["--spec-type", "ngram-simple"]), ql("p")]
    assert lanes[0].drafting and plain_partner(lanes[0], lanes, OPTIONS)[0] is lanes[1]
    alone = plain_partner(lanes[0], lanes[:1], OPTIONS)
    assert alone == (None, "no lane of the run serves its target without drafting")


def test_assessor_gives_drafting_lanes_a_verdict_and_never_runs_the_tool(tmp_path: Path) -> None:
    lanes = [ql("plain"), ql("draft", draft=DRAFT), ql("alone", draft=DRAFT, threads=7)]
    samples = {"plain": run_of([1, 2, 3]), "draft": run_of([1, 2, 3]), "alone": run_of([1, 2, 3])}
    out = Assessor(lanes, QualityOptions(tmp_path)).run(["draft", "alone"], samples)
    assert out.tool_runs == 0 and out.reference is None
    draft, alone = out.records["draft"], out.records["alone"]
    assert draft.status == QualityStatus.LOSSLESS and draft.partner == "plain" and draft.greedy_tokens == 3
    assert alone.status == QualityStatus.UNCHECKED and "threads (7 vs None)" in alone.note
    unchecked = Assessor(lanes, QualityOptions(tmp_path)).run(["draft"])  # quality without speed (tune)
    assert unchecked.records["draft"].status == QualityStatus.UNCHECKED
    assert "has no requests in this run" in unchecked.records["draft"].note


# --- consumers -----------------------------------------------------------------------------------
def result(name: str, q: QualityRecord | None, decode: float = 10.0, **kw: Any) -> LaneResult:
    r = LaneResult(name=name, lane=LaneSpec.model_validate({"name": name, **kw}), quality=q)
    r.summary["decode_tps"] = Stat(decode, decode, decode, 1)
    return r


REF = QualityRecord(QualityStatus.REFERENCE, "ref", 510, 512, ppl=8.66, kld_mean=0.0)
Q8 = QualityRecord(QualityStatus.MEASURED, "ref", 510, 512, kld_mean=0.007, kld_err=0.0004)
Q4 = QualityRecord(QualityStatus.MEASURED, "ref", 510, 512, kld_mean=0.11, kld_err=0.01)


def lossless(partner: str) -> QualityRecord:
    return verdict_record(partner, check_greedy(run_of([1, 2]), run_of([1, 2])))


@pytest.mark.parametrize(
    ("rec", "kept", "why"),
    [
        # the old shape: "lossless" with a KLD of 0.0 it never measured, greedy never checked
        (QualityRecord(QualityStatus.LOSSLESS, "ref", kld_mean=0.0), False, "unknown quality"),
        (verdict_record("q8", None, "no requests"), False, "unknown quality, no KLD of its own (unchecked"),
        (verdict_record("q8", check_greedy(run_of([1]), run_of([3]))), False, "(not lossless: first"),
        (lossless("q8"), True, ""),
        (lossless("ref"), True, ""),
        (lossless("q4"), False, "lossless against 'q4', whose mean KLD 0.1100 > --max-kld 0.01"),
        (lossless("gone"), False, "unknown quality: lossless against 'gone', whose KLD was not measured"),
    ],
)  # fmt: skip
def test_tune_treats_a_lane_without_a_measured_kld_as_unknown(
    rec: QualityRecord, kept: bool, why: str
) -> None:
    lanes = [LaneSpec(name=n) for n in ("ref", "q8", "q4", "draft")]
    records = {"ref": REF, "q8": Q8, "q4": Q4, "draft": rec}
    names, log = within_kld(lanes, records, 0.01)
    assert ("draft" in [x.name for x in names]) is kept
    if not kept:
        (line,) = [entry for entry in log if "draft" in entry]
        assert why in line


def test_tune_says_unknown_for_a_lane_without_quality() -> None:
    _, log = within_kld([LaneSpec(name="x")], {}, 0.01)
    assert log == ["  dropped  x: unknown quality, no KLD measured (no quality measured)"]


def test_plot_data_leaves_out_lanes_without_a_measured_kld() -> None:
    lanes = [
        result("ref", REF, decode=40),
        result("q8", Q8, decode=41),
        result("old-draft", QualityRecord(QualityStatus.LOSSLESS, "ref", kld_mean=0.0), decode=60),
        result("draft", lossless("ref"), decode=70),
    ]
    assert {p[0] for p in speed_quality_points(lanes)} == {"ref", "q8"}
    assert [n for n, _ in left_out(lanes)] == ["old-draft", "draft"]
    assert "lossless: 2 of 2 greedy tokens identical against 'ref'" in left_out(lanes)[1][1]
    png = speed_vs_quality(lanes)
    assert png is not None and png.startswith(b"\x89PNG")


def test_table_shows_a_verdict_where_a_figure_would_be() -> None:
    table = quality_table([result("ref", REF), result("draft", lossless("ref"))])
    assert table is not None
    row = table.rows[1]
    assert row[3] == "–" and row[4] == "lossless (no KLD: speculative)" and row[5] == "–"
    assert row[6] == "lossless: 2 of 2 greedy tokens identical against 'ref' (1 requests)"
    bad = quality_table([result("d", verdict_record("p", check_greedy(run_of([1]), run_of([2]))))])
    assert bad is not None and bad.rows[0][4] == "NOT LOSSLESS (no KLD: speculative)"
    assert bad.rows[0][6].startswith("⚠ not lossless: first divergence at token 1 of request 1 (warm-up)")
