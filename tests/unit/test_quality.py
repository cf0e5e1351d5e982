"""Quality per lane, pure parts: llama-perplexity's real output parsed, the slice sized, argv
spelled per dialect, the base file's all-or-nothing commit, the reference rule, tune's KLD
budget, the quality table and compare, and the store's quality rows (with the schema 1 → 2
migration). Speculative lanes' verdicts: test_quality_greedy.py; pairings: test_quality_pairing.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.schema_history import SCHEMA_10

from lanebench.config.lanes import LaneSpec
from lanebench.engines.llamacpp.dialect import parse_dialect
from lanebench.errors import BadInput
from lanebench.orchestration.tune import within_kld
from lanebench.quality.parse import ParseError, error_lines, parse_base, parse_kld
from lanebench.quality.runner import BaseFile, QualityError, ToolLane, kld_argv, lane_args
from lanebench.quality.select import QualityLane, pick_reference
from lanebench.quality.slicing import SliceError, base_file_bytes, plan_slice, row_bytes, scored_per_chunk
from lanebench.records.lane import LaneResult
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.records.run import RunInfo
from lanebench.records.samples import RequestRecord, Stat
from lanebench.report.quality import delta_verdict, quality_compare_rows, quality_table, speed_quality_points
from lanebench.store import open_store, schema
from lanebench.store.sink import StoreSink

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "perplexity"
GEMMA_VOCAB = 262_144


def read(name: str) -> str:
    return (FIX / name).read_text()


# --- parse ------------------------------------------------------------------------------------
def test_parse_real_kld_output_q4_0_kv() -> None:
    st = parse_kld(read("kld-q4_0-kv-c512-2chunks.stdout"))
    assert (st.ppl, st.ppl_err, st.ppl_base) == (9.921802, 1.119771, 8.663754)
    assert (st.kld_mean, st.kld_err, st.kld_p99, st.kld_max) == (0.114239, 0.010191, 0.617051, 4.434321)
    assert (st.same_top1, st.same_top1_err, st.rms_dp, st.rms_dp_err) == (81.765, 1.712, 10.394, 0.91)
    assert (st.ppl_ratio, st.ppl_ratio_err, st.chunks) == (1.145208, 0.029189, 2)


def test_parse_real_kld_output_against_itself_is_at_the_floor() -> None:
    st = parse_kld(read("kld-self-c512-2chunks.stdout"))
    assert st.kld_mean == 1e-6 and st.same_top1 == 100.0 and st.kld_median == 0.0


def test_parse_base_run_and_its_final_estimate() -> None:
    assert parse_base(read("base-c512-2chunks.stdout"), read("base-c512-2chunks.stderr")) == (
        2,
        8.6638,
        0.96796,
    )
    assert parse_base(read("base-c512-2chunks.stdout")) == (2, 8.6638, None)


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        ("missing-base.stderr", "kl_divergence: failed to open nonexist.kld"),
        ("ctx-mismatch.stderr", "kl_divergence : failed to decode"),
    ],
)
def test_tool_errors_exit_0_yet_are_reported(stderr: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_kld(read("missing-base.stdout"), read(stderr))


def test_output_without_statistics_names_what_is_missing() -> None:
    with pytest.raises(ParseError, match="no 'ppl' statistic"):
        parse_kld("garbage\n")
    with pytest.raises(ParseError, match="printed no perplexity"):
        parse_base("")
    assert error_lines("0.01 I fine\n0.02 E bad thing\n") == ["bad thing"]


# --- slicing ----------------------------------------------------------------------------------
def test_base_file_size_matches_a_real_file() -> None:
    # `llama-perplexity -c 512 --chunks 2 --kl-divergence-base` wrote 267,395,076 bytes (b11434)
    assert base_file_bytes(GEMMA_VOCAB, 512, 2) == 267_395_076
    assert row_bytes(GEMMA_VOCAB) == 524_296 and scored_per_chunk(512) == 255


def test_slice_takes_what_was_asked_when_it_fits() -> None:
    sl = plan_slice(
        4096, 160_118, GEMMA_VOCAB, free_disk=80 << 30, free_memory=20 << 30, model_bytes=253 << 20
    )
    assert (sl.chunks, sl.tokens, sl.batch, sl.limited_by) == (16, 4080, 2048, "")
    assert sl.base_bytes == base_file_bytes(GEMMA_VOCAB, 512, 16)


def test_slice_shrinks_to_free_disk_and_says_so() -> None:
    sl = plan_slice(
        4096, 160_118, GEMMA_VOCAB, free_disk=800_000_000, free_memory=20 << 30, model_bytes=0, where="/x"
    )
    assert sl.chunks == 3 and sl.limited_by == "free disk at /x"
    assert sl.base_bytes + (256 << 20) <= 800_000_000


def test_slice_evaluates_one_chunk_at_a_time_when_memory_is_short() -> None:
    sl = plan_slice(
        1000, 160_118, GEMMA_VOCAB, free_disk=80 << 30, free_memory=1 << 30, model_bytes=253 << 20
    )
    assert sl.batch == 512


@pytest.mark.parametrize(
    ("disk", "memory", "message"),
    [(100 << 20, 20 << 30, r"free disk at /x is short \(need 402 MB free, 105 MB are\)"),
     (80 << 30, 300 << 20, "not enough memory")],
)  # fmt: skip
def test_slice_that_cannot_fit_is_one_clear_error(disk: int, memory: int, message: str) -> None:
    with pytest.raises(SliceError, match=message):
        plan_slice(4096, 160_118, GEMMA_VOCAB, free_disk=disk, free_memory=memory, model_bytes=0, where="/x")


# --- argv -------------------------------------------------------------------------------------
def test_lane_args_follow_this_builds_help() -> None:
    dialect = parse_dialect("", read("b11434.help"))
    lane = ToolLane(Path("m.gguf"), "q8_0", "on", threads=2, gpu_layers=99)
    expected = ["-m", "m.gguf", "-t", "2", "-ngl", "99", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"]
    assert lane_args(lane, dialect) == expected
    assert lane_args(ToolLane(Path("m.gguf")), dialect) == ["-m", "m.gguf", "-fa", "auto"]


def test_older_builds_take_a_bare_fa_and_may_lack_kv_flags() -> None:
    old = parse_dialect("", "-fa,   --flash-attn                     enable Flash Attention\n")
    assert lane_args(ToolLane(Path("m"), flash_attn="on"), old) == ["-m", "m", "-fa"]
    assert lane_args(ToolLane(Path("m"), flash_attn="off"), old) == ["-m", "m"]
    with pytest.raises(QualityError, match="takes no -ctk/-ctv: cannot measure KV type q4_0"):
        lane_args(ToolLane(Path("m"), kv="q4_0"), old)


def test_kld_argv_reads_the_base_file_with_the_same_context() -> None:
    from lanebench.quality.slicing import Slice

    dialect = parse_dialect("", read("b11434.help"))
    argv = kld_argv(
        Path("/b/llama-perplexity"), ToolLane(Path("m")), dialect, Slice(512, 4, 2048, 1020, 1), Path("b")
    )
    assert argv[argv.index("-c") + 1] == "512" and argv[argv.index("--chunks") + 1] == "4"
    assert argv[-3:] == ["--kl-divergence-base", "b", "--kl-divergence"]


# --- the base file: whole or absent ------------------------------------------------------------
def test_short_base_file_is_removed_with_a_clear_error(tmp_path: Path) -> None:
    with BaseFile(tmp_path) as bf:
        bf.partial.write_bytes(b"_logits_" + b"\0" * 100)  # what a full disk leaves
        with pytest.raises(QualityError, match="is 108 of 1,000 bytes: the disk filled up") as exc:
            bf.commit(1000)
        assert "\n" not in str(exc.value) and not bf.partial.exists()
    assert list(tmp_path.iterdir()) == []


def test_whole_base_file_is_kept_until_the_context_ends(tmp_path: Path) -> None:
    with BaseFile(tmp_path) as bf:
        bf.partial.write_bytes(b"x" * 10)
        path = bf.commit(10)
        assert path.read_bytes() == b"x" * 10 and not bf.partial.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(self: Path, data: bytes) -> int:
        self.open("wb").write(data[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(OSError, match="No space"), BaseFile(tmp_path) as bf:
        bf.partial.write_bytes(b"0123456789")
    assert list(tmp_path.iterdir()) == []


# --- reference --------------------------------------------------------------------------------
def ql(name: str, **kw: object) -> QualityLane:
    return QualityLane(LaneSpec.model_validate({"name": name, **kw}), Path("/bin/llama-server"), Path("/m"))


def test_reference_rule_prefers_f16_kv_and_no_draft() -> None:
    lanes = [ql("q8", kv="q8_0"), ql("draft", draft={"kind": "model"}), ql("plain")]
    ref = pick_reference(lanes)
    assert ref is not None and ref.name == "plain"
    assert pick_reference([ql("a"), ql("b", reference=True)]).name == "b"  # type: ignore[union-attr]
    assert pick_reference([QualityLane(LaneSpec(name="x", engine="openai", url="http://h"))]) is None


@pytest.mark.parametrize(
    ("lanes", "named", "message"),
    [
        ([ql("a")], "nope", "--reference: no lane named 'nope' (lanes: a)"),
        ([ql("a", draft={"kind": "model"})], "a", "cannot be the reference"),
        ([ql("a", reference=True), ql("b", reference=True)], None, "all say reference = true"),
    ],
)
def test_bad_reference_is_refused(lanes: list[QualityLane], named: str | None, message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        pick_reference(lanes, named)


# --- tune's budget ----------------------------------------------------------------------------
def test_tune_keeps_only_lanes_within_the_kld_budget() -> None:
    lanes = [LaneSpec(name=n) for n in ("ref", "q8", "q4", "emu")]
    recs = {
        "ref": QualityRecord(QualityStatus.REFERENCE, kld_mean=0.0),
        "q8": QualityRecord(QualityStatus.MEASURED, kld_mean=0.002, kld_err=0.0003),
        "q4": QualityRecord(QualityStatus.MEASURED, kld_mean=0.11, kld_err=0.01),
        "emu": QualityRecord(QualityStatus.EMULATED, note="output not the model's"),
    }
    kept, log = within_kld(lanes, recs, 0.01)
    assert [x.name for x in kept] == ["ref", "q8"]
    assert "q4: mean KLD 0.1100 ± 0.0100 > --max-kld 0.01" in log[0] and "output not the model's" in log[1]


# --- report -----------------------------------------------------------------------------------
def result(name: str, q: QualityRecord | None, decode: float = 10.0, **kw: object) -> LaneResult:
    r = LaneResult(name=name, lane=LaneSpec.model_validate({"name": name, **kw}), quality=q)
    r.summary["decode_tps"] = Stat(decode, decode, decode, 1)
    return r


def test_quality_table_rows() -> None:
    ref = QualityRecord(QualityStatus.REFERENCE, "ref", 510, 512, ppl=8.6638, ppl_err=0.968, kld_mean=0.0)
    q4 = QualityRecord(QualityStatus.MEASURED, "ref", 510, 512, ppl=9.92, ppl_err=1.12, kld_mean=0.114239,
                       kld_err=0.010191, kld_p99=0.617, same_top1=81.765, same_top1_err=1.712)  # fmt: skip
    t = quality_table([result("ref", ref), result("q4", q4, kv="q4_0"), result("none", None)])
    assert t is not None and len(t.rows) == 2
    assert t.rows[1][2:6] == ["Q4_0", "9.920 ± 1.120", "0.1142 ± 0.0102 (p99 0.617)", "81.77 ± 1.71%"]
    assert t.rows[0][4] == "0 (reference)" and t.rows[0][6] == "reference"
    assert "510 tokens scored in chunks of 512" in t.caption
    assert quality_table([result("x", None)]) is None


def test_quality_deltas_within_noise_or_beyond_errors() -> None:
    assert delta_verdict(0.002, 0.0003, 0.0025, 0.0003, -1) == "within noise"
    assert delta_verdict(0.002, 0.0003, 0.114, 0.010, -1) == "B worse (beyond errors)"
    assert delta_verdict(80.0, 1.0, 90.0, 1.0, 1) == "B better (beyond errors)"
    a = [result("q4", QualityRecord(QualityStatus.MEASURED, kld_mean=0.1, kld_err=0.01))]
    b = [result("q4", QualityRecord(QualityStatus.MEASURED, kld_mean=0.11, kld_err=0.01))]
    (row,) = quality_compare_rows(a, b)
    assert row["verdict"] == "within noise" and row["delta"] == pytest.approx(0.01)


def test_pareto_front_of_speed_and_quality() -> None:
    lanes = [
        result("ref", QualityRecord(QualityStatus.REFERENCE, kld_mean=0.0), decode=40),
        result("q8", QualityRecord(QualityStatus.MEASURED, kld_mean=0.002), decode=41),
        result("slow-q4", QualityRecord(QualityStatus.MEASURED, kld_mean=0.1), decode=39),
    ]
    front = {n: on for n, _, _, on in speed_quality_points(lanes)}
    assert front == {"ref": True, "q8": True, "slow-q4": False}


# --- store ------------------------------------------------------------------------------------
def test_quality_is_stored_and_loaded(tmp_path: Path) -> None:
    from lanebench.config.job import JobSpec

    store = open_store(str(tmp_path / "r.sqlite"))
    sink = StoreSink(store)
    run = RunInfo("r1", "2026-11-30T00:00:00+00:00", "t", JobSpec())
    sink.run_started(run)
    lane = result("q4", None)
    sample = RequestRecord(kind="single", rep=0, n_in=1, n_out=2, tokens_sha="abc", token_ids=[7, 9])
    lane.samples.append(sample)
    sink.lane_started(run, lane)
    sink.sample(run, lane.name, lane.samples[0])
    sink.lane_finished(run, lane)
    lane.quality = QualityRecord(
        QualityStatus.MEASURED, "ref", 510, 512, kld_mean=0.11, kld_err=0.01, greedy=True
    )
    sink.lane_finished(run, lane)  # quality arrives after the lane: the row is replaced, not added
    sink.lane_finished(run, lane)
    (back,) = store.load_lanes("r1")
    assert back.quality == lane.quality and back.samples[0].tokens_sha == "abc"
    assert back.samples[0].token_ids == [7, 9], "schema 8 keeps the ids the greedy check compares"


def test_schema_1_database_gains_quality(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    open_store(str(db)).close()
    con = sqlite3.connect(db)  # make it what lanebench wrote before quality existed
    con.execute("DROP TABLE quality")
    con.execute("ALTER TABLE samples DROP COLUMN tokens_sha")
    con.execute("ALTER TABLE lanes DROP COLUMN memory")  # schema 3
    con.execute("ALTER TABLE lanes DROP COLUMN baseline")  # schema 4
    con.execute("ALTER TABLE lanes DROP COLUMN placement")  # schema 5
    for column in ("stream_chunks", "first_tokens", "token_count"):  # schema 6
        con.execute(f"ALTER TABLE samples DROP COLUMN {column}")
    con.execute("ALTER TABLE lanes DROP COLUMN request")
    con.execute("ALTER TABLE lanes DROP COLUMN attribution")  # schema 7
    con.execute("ALTER TABLE samples DROP COLUMN token_ids")  # schema 8
    for table in ("samples", "aggregates"):  # schema 9
        for column in ("other_cores", "busy", "load"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("ALTER TABLE lanes DROP COLUMN busy")
    for table, column in SCHEMA_10:  # schema 10
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    open_store(str(db)).close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta").fetchone() == (str(schema.latest_version()),)
    assert "tokens_sha" in [r[1] for r in con.execute("PRAGMA table_info(samples)")]
    assert "kld_mean" in [r[1] for r in con.execute("PRAGMA table_info(quality)")]
    assert "placement" in [r[1] for r in con.execute("PRAGMA table_info(lanes)")]
    assert "request" in [r[1] for r in con.execute("PRAGMA table_info(lanes)")]
    assert "token_count" in [r[1] for r in con.execute("PRAGMA table_info(samples)")]
    assert {"placement", "attribution"} <= {r[1] for r in con.execute("PRAGMA table_info(lanes)")}
    assert "token_ids" in [r[1] for r in con.execute("PRAGMA table_info(samples)")]


def test_quality_record_survives_json() -> None:
    rec = QualityRecord(QualityStatus.NOT_LOSSLESS, greedy=False, partner="p", divergence_token=3, note="n")
    lane = result("x", rec)
    back = LaneResult.from_dict(lane.to_dict())
    assert back.quality == lane.quality and back.quality is not None
    assert back.quality.status == QualityStatus.NOT_LOSSLESS and back.quality.divergence_token == 3
