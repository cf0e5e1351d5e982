"""MTP heads against the real llama-server: convert, draft, check agrees, translate.

A tiny random-weight gemma4 main model (the real 270M's vocabulary) and tiny HF assistant
checkpoints of both transformers classes are synthesised once per module; every head is
then converted by lanebench and loaded by the real server with ``--spec-type draft-mtp``.
Acceptance is near zero with random weights: these tests assert drafting, not acceptance.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from tests.gguf_fixtures import edit_tokens, f32_tensor, rewrite, set_key, truncate

from lanebench.engines.llamacpp.dialect import Dialect, probe
from lanebench.errors import LaneFailed
from lanebench.gguf import shapes
from lanebench.gguf.check import check_draft
from lanebench.gguf.convert import ConvertOptions, convert_head
from lanebench.gguf.synth import synth_assistant, synth_main
from lanebench.gguf.translate import translate
from lanebench.gguf.writer import u32
from lanebench.server.process import ServerProcess

pytestmark = pytest.mark.e2e
CLASSES = ("Gemma4AssistantForCausalLM", "Gemma4UnifiedAssistantForCausalLM")


@dataclass(frozen=True)
class Tiny:
    dir: Path
    main: Path
    hf: dict[str, Path]
    head: Path  # upstream Q8_0 head of the first class


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, gemma_270m: Path) -> Tiny:
    d = tmp_path_factory.mktemp("heads")
    main_shape, head_shape = shapes.preset("tiny")
    synth_main(d / "main.gguf", main_shape, gemma_270m)
    hf_dirs = {}
    for cls in CLASSES:
        hf_dirs[cls] = d / f"hf-{cls}"
        synth_assistant(hf_dirs[cls], main_shape, head_shape, cls, shards=2 if "Unified" in cls else 1)
    head = d / "head.gguf"
    convert_head(ConvertOptions(hf_dirs[CLASSES[0]], d / "main.gguf", head))
    return Tiny(d, d / "main.gguf", hf_dirs, head)


@pytest.fixture(scope="module")
def build(server_bin: Path) -> Dialect:
    return probe(server_bin)


def serve(server_bin: Path, main: Path, head: Path, log: Path) -> tuple[str, int]:
    """The real server's verdict: ('no-load', 0), ('no-draft', 0) or ('drafts', draft_n)."""

    def argv(port: int) -> list[str]:
        return [str(server_bin), "-m", str(main), "-md", str(head), "--spec-type", "draft-mtp",
                "--spec-draft-n-max", "3", "--host", "127.0.0.1", "--port", str(port),
                "-c", "256", "-np", "1", "-t", "2"]  # fmt: skip

    try:
        with ServerProcess(argv, log, load_timeout_s=180) as srv:
            body = {"prompt": "Hello there", "n_predict": 8, "ignore_eos": True, "temperature": 0}
            req = urllib.request.Request(
                srv.base_url + "/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=180) as resp:
                    timings = json.load(resp).get("timings", {})
            except OSError:
                return "no-draft", 0  # it died or refused while serving
    except LaneFailed:
        return "no-load", 0
    n = int(timings.get("draft_n", 0))
    return ("drafts" if n > 0 else "no-draft"), n


def lanebench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench.cli.main", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("cls", CLASSES)
def test_convert_head_cli_then_real_server_drafts(tiny: Tiny, server_bin: Path, cls: str) -> None:
    out = tiny.dir / f"cli-{cls}.gguf"
    proc = lanebench(
        "convert-head", str(tiny.hf[cls]), "--main", str(tiny.main), "-o", str(out), "--type", "q8_0"
    )
    assert proc.returncode == 0, proc.stderr
    verdict, draft_n = serve(server_bin, tiny.main, out, tiny.dir / f"serve-{cls}.log")
    assert verdict == "drafts", (tiny.dir / f"serve-{cls}.log").read_text()[-2000:]
    assert draft_n > 0


def _other_width_head(tiny: Tiny, gemma_270m: Path) -> Path:
    """A head converted for a 256-wide main model: right in every way but its backbone."""
    main_shape, head_shape = shapes.preset("tiny")
    wide = replace(main_shape, hidden=256)
    synth_main(tiny.dir / "main256.gguf", wide, tiny.main)
    synth_assistant(tiny.dir / "hf256", wide, head_shape, CLASSES[0])
    out = tiny.dir / "b-backbone.gguf"
    convert_head(ConvertOptions(tiny.dir / "hf256", tiny.dir / "main256.gguf", out))
    return out


def _broken(case: str, tiny: Tiny, gemma_270m: Path) -> Path:
    good, d = tiny.head, tiny.dir
    if case == "good":
        return good
    if case == "backbone":
        return _other_width_head(tiny, gemma_270m)
    if case == "architecture":
        return rewrite(good, d / "b-arch.gguf", arch="gemma4")
    if case == "missing-tensor":
        return rewrite(good, d / "b-missing.gguf", drop=("blk.1.ffn_up.weight",))
    if case == "tensor-shape":
        return rewrite(good, d / "b-shape.gguf", replace_tensor=f32_tensor("blk.0.attn_q_norm.weight", (64,)))
    if case == "other-dialect":
        out = d / "b-atomic.gguf"
        translate(good, "atomic", out, force=True)
        return out
    if case == "truncated":
        return truncate(good, d / "b-trunc.gguf")
    if case == "not-gguf":
        (d / "b-text.gguf").write_text("this is not a GGUF file\n" * 50)
        return d / "b-text.gguf"
    if case == "nextn":
        key = "gemma4-assistant.nextn_predict_layers"
        return rewrite(good, d / "b-nextn.gguf", kv_edit=set_key(key, u32(key, 1)))
    raise AssertionError(case)


# case -> a word check's line must contain (the actual cause)
BROKEN = {
    "good": None,
    "backbone": "backbone width",
    "architecture": "architecture",
    "missing-tensor": "blk.1.ffn_up.weight",
    "tensor-shape": "blk.0.attn_q_norm.weight",
    "other-dialect": "dialect",
    "truncated": "truncated",
    "not-gguf": "not a GGUF",
    "nextn": "nextn_predict_layers",
}


@pytest.mark.parametrize("case", BROKEN)
def test_check_agrees_with_real_server(
    tiny: Tiny, server_bin: Path, build: Dialect, gemma_270m: Path, case: str
) -> None:
    head = _broken(case, tiny, gemma_270m)
    problems = check_draft(tiny.main, head, "mtp", build)
    verdict, _ = serve(server_bin, tiny.main, head, tiny.dir / f"check-{case}.log")
    assert (problems == []) == (verdict == "drafts"), (problems, verdict)
    cause = BROKEN[case]
    if cause is not None:
        assert any(cause in line for line in problems), problems


def test_vocabulary_mismatch_is_flagged_though_upstream_still_drafts(
    tiny: Tiny, server_bin: Path, build: Dialect
) -> None:
    """b11434's draft-mtp never compares vocabularies: it drafts with a head whose token texts
    differ (every draft is then for another vocabulary). check must still flag it; if a
    later build starts refusing, this test fails and the documentation must change."""
    head = rewrite(
        tiny.head,
        tiny.dir / "b-vocab.gguf",
        kv_edit=edit_tokens(lambda t: t[:1000] + t[1000:2000][::-1] + t[2000:]),
    )
    problems = check_draft(tiny.main, head, "mtp", build)
    assert any(line.startswith("vocabulary:") for line in problems), problems
    verdict, _ = serve(server_bin, tiny.main, head, tiny.dir / "vocab.log")
    assert verdict == "drafts"


def test_translate_atomic_head_to_upstream_loads_and_drafts(
    tiny: Tiny, server_bin: Path, build: Dialect
) -> None:
    atomic = tiny.dir / "atomic.gguf"
    convert_head(ConvertOptions(tiny.hf[CLASSES[1]], tiny.main, atomic, dialect="atomic", force=True))
    assert any(p.startswith("dialect:") for p in check_draft(tiny.main, atomic, "mtp", build))
    assert serve(server_bin, tiny.main, atomic, tiny.dir / "atomic.log")[0] == "no-load"
    upstream = tiny.dir / "translated.gguf"
    proc = lanebench("gguf", "translate", str(atomic), "--to", "upstream", "-o", str(upstream))
    assert proc.returncode == 0, proc.stderr
    assert check_draft(tiny.main, upstream, "mtp", build) == []
    assert serve(server_bin, tiny.main, upstream, tiny.dir / "translated.log")[0] == "drafts"


def test_moe_main_with_head_drafts(tiny: Tiny, server_bin: Path, build: Dialect) -> None:
    main_shape, head_shape = shapes.preset("tiny-moe")
    main = tiny.dir / "moe.gguf"
    synth_main(main, main_shape, tiny.main)
    synth_assistant(tiny.dir / "hf-moe", main_shape, head_shape, CLASSES[0])
    head = tiny.dir / "moe-head.gguf"
    convert_head(ConvertOptions(tiny.dir / "hf-moe", main, head))
    assert check_draft(main, head, "mtp", build) == []
    assert serve(server_bin, main, head, tiny.dir / "moe.log")[0] == "drafts"


def test_cli_check_exit_codes(tiny: Tiny, server_bin: Path) -> None:
    ok = lanebench(
        "gguf", "check", "--main", str(tiny.main), "--head", str(tiny.head), "--server-bin", str(server_bin)
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tiny.dir / "cli-trunc.gguf"
    truncate(tiny.head, bad)
    res = lanebench(
        "gguf",
        "check",
        "--main",
        str(tiny.main),
        "--head",
        str(bad),
        "--server-bin",
        str(server_bin),
        "--json",
    )
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert out["ok"] is False and any("truncated" in p for p in out["problems"])
