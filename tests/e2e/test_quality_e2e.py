"""End to end: quality per lane with the build's real llama-perplexity and the real 270M.

One module-scoped assessment scores, against the plain F16-KV reference: the reference again
(the tool's floor), the same with server-only flags (it shares that run), Q8_0 and Q4_0 KV,
Q8_0 KV given in ``extra_args`` (passed to the tool), a Q2_K requantisation made here with the
build's own llama-quantize, a lane with emulated acceptance and a self-drafting lane (neither is
scored). 510 tokens are scored (2 chunks of 512): the base file is 267 MB while it exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.quality.assess import Assessor, QualityOptions, QualityOutcome
from lanebench.quality.runner import QualityError, find_perplexity
from lanebench.quality.select import QualityLane
from lanebench.records.quality import QualityRecord, QualityStatus

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
        lane("server-only-flags", extra_args=["--cache-ram", "0", "--temp", "0.7", "-c", "4096"]),
        lane("kv-q8", kv="q8_0", flash_attn="on"),
        lane("kv-q8-in-extra-args", extra_args=["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"]),
        lane("kv-q4", kv="q4_0", flash_attn="on"),
        lane("q2k", model=q2k),
        lane("emulated", draft=emulated),
        lane("self-draft", draft=Draft(kind="model", block_size=3)),
    ]
    out = Assessor(lanes, QualityOptions(work, tokens=TOKENS)).run([q.name for q in lanes])
    return out, work


def rec(assessed: tuple[QualityOutcome, Path], name: str) -> QualityRecord:
    return assessed[0].records[name]


def test_slice_is_sized_and_the_base_file_is_gone(assessed: tuple[QualityOutcome, Path]) -> None:
    out, work = assessed
    assert out.slice is not None and out.slice.tokens == TOKENS and out.slice.chunks == 2
    # base + ref-again (with server-only-flags) + q8 + q8 in extra_args + q4 + q2k; the emulated
    # and the self-drafting lane run nothing
    assert out.tool_runs == 6
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


def test_flags_the_tool_takes_reach_it_and_server_only_flags_share_a_run(
    assessed: tuple[QualityOutcome, Path],
) -> None:
    """Scored as F16 KV (the old rule passed only the lane fields), the extra_args lane would sit
    at the tool's floor; given its flags, it is the Q8_0 KV lane, figure for figure."""
    q8, extra = rec(assessed, "kv-q8"), rec(assessed, "kv-q8-in-extra-args")
    assert extra.status == QualityStatus.MEASURED and extra.fingerprint != q8.fingerprint
    assert (extra.kld_mean, extra.same_top1, extra.ppl) == (q8.kld_mean, q8.same_top1, q8.ppl)
    again, flags = rec(assessed, "ref-again"), rec(assessed, "server-only-flags")
    assert flags.fingerprint == again.fingerprint and flags.kld_mean == again.kld_mean


def test_a_drafting_lane_gets_no_figure_without_requests(assessed: tuple[QualityOutcome, Path]) -> None:
    r = rec(assessed, "self-draft")
    assert r.status == QualityStatus.UNCHECKED and r.partner == "ref" and not r.has_figures
    assert r.ppl is None and r.same_top1 is None and "has no requests in this run" in r.note


def _two_lanes(bin_: Path, model: Path) -> list[QualityLane]:
    spec = LaneSpec(name="ref", model=model, threads=2, server_bin=bin_)
    other = LaneSpec(name="q4", model=model, threads=2, kv="q4_0", flash_attn="on", server_bin=bin_)
    return [QualityLane(spec, bin_, model), QualityLane(other, bin_, model)]


def test_base_file_cut_short_while_written_is_a_clean_error(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    """Fault injection without root: a llama-perplexity run under a 16 MiB file-size limit with
    SIGXFSZ ignored gets EFBIG past it, as a full disk gives ENOSPC; the real tool goes on, exits
    0 and leaves a short base file, which must become one clean line and leave nothing behind."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "llama-server").symlink_to(server_bin)
    real = find_perplexity(server_bin)
    assert real is not None
    wrapper = bin_dir / "llama-perplexity"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import os, resource, signal, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"os.execv({str(real)!r}, [{str(real)!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    lanes = _two_lanes(bin_dir / "llama-server", gemma_270m)
    with pytest.raises(QualityError, match="the disk filled up") as exc:
        Assessor(lanes, QualityOptions(work, tokens=255)).run(["q4"])
    assert "is 16,777,216 of " in str(exc.value) and "\n" not in str(exc.value)
    assert list(work.iterdir()) == [], "no half-written base file may stay"


def test_too_little_free_disk_is_refused_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_bin: Path, gemma_270m: Path
) -> None:
    """Fault injection without root: the work folder reports 16 MB free."""
    real = shutil.disk_usage

    def small(path: str | os.PathLike[str]) -> object:
        du = real(path)
        return type(du)(du.total, du.total - (16 << 20), 16 << 20)

    import lanebench.quality.assess as assess

    monkeypatch.setattr(assess.shutil, "disk_usage", small)
    work = tmp_path / "tiny"
    with pytest.raises(QualityError, match=r"free disk at .*tiny is short"):
        Assessor(_two_lanes(server_bin, gemma_270m), QualityOptions(work, tokens=255)).run(["q4"])
    assert list(work.iterdir()) == []


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
