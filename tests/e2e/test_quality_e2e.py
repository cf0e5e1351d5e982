"""End to end: quality per lane with the build's real llama-perplexity and the real 270M.

One module-scoped assessment scores, against the plain F16-KV reference: the reference again
(the tool's floor), Q8_0 and Q4_0 KV, a Q2_K requantisation made here with the build's own
llama-quantize, and a lane with emulated acceptance (skipped). 510 tokens are scored (2 chunks
of 512): the base file is 267 MB while it exists.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lanebench.lanes import Draft, LaneSpec
from lanebench.quality.assess import Assessor, QualityOptions, QualityOutcome
from lanebench.quality.runner import QualityError, find_perplexity
from lanebench.quality.select import QualityLane
from lanebench.records import QualityRecord, QualityStatus

pytestmark = pytest.mark.e2e

TOKENS = 510  # 2 chunks of 512 (255 scored each)


@pytest.fixture(scope="module")
def q2k(tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path) -> Path:
    out = tmp_path_factory.mktemp("q2k") / "gemma-3-270m-Q2_K.gguf"
    quantize = server_bin.parent / "llama-quantize"
    proc = subprocess.run(
        [str(quantize), "--allow-requantize", str(gemma_270m), str(out), "Q2_K", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def assessed(
    tmp_path_factory: pytest.TempPathFactory, server_bin: Path, gemma_270m: Path, q2k: Path
) -> tuple[QualityOutcome, Path]:
    work = tmp_path_factory.mktemp("quality")

    def lane(name: str, model: Path = gemma_270m, **kw: object) -> QualityLane:
        spec = LaneSpec.model_validate({"name": name, "model": model, "threads": 2, **kw})
        return QualityLane(spec, server_bin, model)

    emulated = Draft(kind="model", block_size=3, emulate=[0.9, 0.8])
    lanes = [
        lane("ref", reference=True),
        lane("ref-again"),
        lane("kv-q8", kv="q8_0", flash_attn="on"),
        lane("kv-q4", kv="q4_0", flash_attn="on"),
        lane("q2k", model=q2k),
        lane("emulated", draft=emulated),
    ]
    out = Assessor(lanes, QualityOptions(work, tokens=TOKENS)).run([q.name for q in lanes])
    return out, work


def rec(assessed: tuple[QualityOutcome, Path], name: str) -> QualityRecord:
    return assessed[0].records[name]


def test_slice_is_sized_and_the_base_file_is_gone(assessed: tuple[QualityOutcome, Path]) -> None:
    out, work = assessed
    assert out.slice is not None and out.slice.tokens == TOKENS and out.slice.chunks == 2
    assert out.tool_runs == 5  # base + ref-again + q8 + q4 + q2k; the emulated lane runs nothing
    assert list(work.iterdir()) == [], "the base file and its folder must be removed"


def test_reference_against_itself_is_at_the_floor(assessed: tuple[QualityOutcome, Path]) -> None:
    again = rec(assessed, "ref-again")
    assert again.status == QualityStatus.MEASURED and again.tokens == TOKENS
    assert again.kld_mean is not None and again.kld_mean < 1e-4
    assert again.same_top1 is not None and again.same_top1 >= 99.5
    assert rec(assessed, "ref").status == QualityStatus.REFERENCE


def test_kv_quantisation_costs_quality_in_order(assessed: tuple[QualityOutcome, Path]) -> None:
    f16, q8, q4 = (rec(assessed, n) for n in ("ref-again", "kv-q8", "kv-q4"))
    for r in (f16, q8, q4):
        assert r.kld_mean is not None and r.kld_err is not None
    assert q4.kld_mean - f16.kld_mean > q4.kld_err + f16.kld_err  # type: ignore[operator]
    assert f16.kld_mean <= q8.kld_mean < q4.kld_mean - q4.kld_err  # type: ignore[operator]
    assert q4.same_top1 < q8.same_top1  # type: ignore[operator]


def test_requantised_model_is_clearly_worse(assessed: tuple[QualityOutcome, Path]) -> None:
    q2 = rec(assessed, "q2k")
    assert q2.kld_mean is not None and q2.kld_err is not None and q2.kld_mean > 10 * q2.kld_err
    assert q2.ppl_ratio is not None and q2.ppl_ratio_err is not None
    assert q2.ppl_ratio - 1 > 2 * q2.ppl_ratio_err
    assert q2.same_top1 is not None and q2.same_top1 < 95


def test_emulated_lane_is_marked_and_not_scored(assessed: tuple[QualityOutcome, Path]) -> None:
    e = rec(assessed, "emulated")
    assert e.status == QualityStatus.EMULATED and not e.has_figures
    assert "output not the model's" in e.note


def test_full_disk_while_writing_the_base_file_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_bin: Path, gemma_270m: Path
) -> None:
    """A 16 MB tmpfs (fault injection): free space is reported as plentiful so the slice is
    planned, the real tool fills the disk, and nothing is left behind."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(tiny)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        import lanebench.quality.assess as assess

        class Plenty:
            free = 100 << 30

        monkeypatch.setattr(assess.shutil, "disk_usage", lambda _p: Plenty())
        spec = LaneSpec(name="ref", model=gemma_270m, threads=2)
        other = LaneSpec(name="q4", model=gemma_270m, threads=2, kv="q4_0", flash_attn="on")
        lanes = [QualityLane(spec, server_bin, gemma_270m), QualityLane(other, server_bin, gemma_270m)]
        with pytest.raises(QualityError, match="the disk filled up") as exc:
            Assessor(lanes, QualityOptions(tiny, tokens=255)).run(["q4"])
        assert "\n" not in str(exc.value)
        assert list(tiny.iterdir()) == [], "no half-written base file may stay"
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


def test_too_little_free_disk_is_refused_before_running(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(tiny)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        spec = LaneSpec(name="ref", model=gemma_270m)
        other = LaneSpec(name="q4", model=gemma_270m, kv="q4_0", flash_attn="on")
        lanes = [QualityLane(spec, server_bin, gemma_270m), QualityLane(other, server_bin, gemma_270m)]
        with pytest.raises(QualityError, match=r"free disk at .*tiny is short"):
            Assessor(lanes, QualityOptions(tiny, tokens=255)).run(["q4"])
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


def test_build_without_llama_perplexity_gets_a_note(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    alone = tmp_path / "bin"
    alone.mkdir()
    wrapper = alone / "llama-server"
    wrapper.write_text(f'#!/bin/sh\nexec "{server_bin}" "$@"\n')
    wrapper.chmod(0o755)
    assert find_perplexity(wrapper) is None
    spec = LaneSpec(name="elsewhere", model=gemma_270m, server_bin=wrapper)
    lanes = [QualityLane(spec, wrapper, gemma_270m)]
    out = Assessor(lanes, QualityOptions(tmp_path / "w")).run(["elsewhere"])
    r = out.records["elsewhere"]
    assert r.status == QualityStatus.UNAVAILABLE and "no llama-perplexity beside" in r.note
