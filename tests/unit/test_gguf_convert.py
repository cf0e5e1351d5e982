"""convert-head: verify passes per type; every bad input is one clear line, no half files."""

from __future__ import annotations

import errno
import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.gguf_fixtures import small_set

from lanebench.errors import BadInput
from lanebench.gguf import shapes, writer
from lanebench.gguf.convert import ConvertOptions, convert_head, verify
from lanebench.gguf.quant import QTYPES
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.synth import synth_assistant


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_set(tmp_path_factory.mktemp("conv"))


def _opts(s: dict[str, Path], out: Path, **kw: object) -> ConvertOptions:
    return ConvertOptions(kw.pop("hf", s["hf"]), kw.pop("main", s["main"]), out, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("qtype", ["q8_0", "f16", "bf16"])
def test_verify_passes(s: dict[str, Path], tmp_path: Path, qtype: str) -> None:
    r = convert_head(_opts(s, tmp_path / "h.gguf", qtype=QTYPES[qtype]))
    stats = verify(s["hf"], r.out, r.mapped)
    assert all(v.max_ratio <= 1.0 for v in stats.values()), stats
    assert QTYPES[qtype].name in stats
    if qtype == "bf16":
        assert stats["BF16"].max_abs == 0.0  # BF16 source copied bit for bit


def test_head_records_its_source_and_vocabulary(s: dict[str, Path], tmp_path: Path) -> None:
    r = convert_head(_opts(s, tmp_path / "h.gguf"))
    g, main = open_gguf(r.out), open_gguf(s["main"])
    assert g.get("lanebench.source.architecture") == "Gemma4AssistantForCausalLM"
    assert g.get("lanebench.source.path") == str(s["hf"].resolve())
    assert g.vocab_hash() == main.vocab_hash()


def test_sharded_checkpoint_converts_to_the_same_bytes(s: dict[str, Path], tmp_path: Path) -> None:
    main_shape, head_shape = shapes.preset("tiny")
    main_shape = shapes.with_overrides(main_shape, vocab=512)
    synth_assistant(tmp_path / "sharded", main_shape, head_shape, "Gemma4AssistantForCausalLM", shards=3)
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    a = convert_head(_opts(s, tmp_path / "a.gguf", hf=tmp_path / "sharded")).out
    b = convert_head(_opts(s, tmp_path / "b.gguf")).out
    ga, gb = open_gguf(a), open_gguf(b)
    for name in gb.tensors:
        assert np.array_equal(ga.tensor_data(name), gb.tensor_data(name)), name


def _copy_hf(s: dict[str, Path], tmp_path: Path) -> Path:
    d = tmp_path / "hf"
    shutil.copytree(s["hf"], d)
    return d


def _edit_config(d: Path, fn) -> None:  # type: ignore[no-untyped-def]
    cfg = json.loads((d / "config.json").read_text())
    fn(cfg)
    (d / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no-config", "config.json: missing"),
        ("no-weights", "no model.safetensors"),
        ("other-model-type", "model_type"),
        ("unknown-class", "known: Gemma4AssistantForCausalLM, Gemma4UnifiedAssistantForCausalLM"),
        ("bigger-head", "has shape"),
        ("fewer-layers", "is not part of"),
        ("more-layers", "is missing"),
        ("other-backbone", "backbone_hidden_size is 256"),
    ],
)
def test_bad_checkpoint(s: dict[str, Path], tmp_path: Path, breakage: str, message: str) -> None:
    d = _copy_hf(s, tmp_path)
    edits = {
        "other-model-type": lambda c: c.update(model_type="gemma3_text"),
        "unknown-class": lambda c: c.update(architectures=["Gemma9AssistantForCausalLM"]),
        "bigger-head": lambda c: c["text_config"].update(intermediate_size=256),
        "fewer-layers": lambda c: c["text_config"].update(
            num_hidden_layers=1, layer_types=["sliding_attention"]
        ),
        "more-layers": lambda c: c["text_config"].update(
            num_hidden_layers=3, layer_types=["sliding_attention"] + ["full_attention"] * 2
        ),
        "other-backbone": lambda c: c.update(backbone_hidden_size=256),
    }
    if breakage == "no-config":
        (d / "config.json").unlink()
    elif breakage == "no-weights":
        (d / "model.safetensors").unlink()
    else:
        _edit_config(d, edits[breakage])
    with pytest.raises(BadInput, match=message):
        convert_head(_opts(s, tmp_path / "out.gguf", hf=d))
    assert not (tmp_path / "out.gguf").exists()


def test_main_must_be_gemma4(s: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="expected 'gemma4'"):
        convert_head(_opts(s, tmp_path / "o.gguf", main=s["tok"]))


def test_existing_output_needs_force(s: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.gguf"
    out.write_text("keep me")
    with pytest.raises(BadInput, match="--force"):
        convert_head(_opts(s, out))
    assert out.read_text() == "keep me"
    convert_head(_opts(s, out, force=True))
    assert open_gguf(out).arch == "gemma4-assistant"


def test_disk_full_leaves_no_file(
    s: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = writer.write_chunk

    def full(fout, buf):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fout, buf)

    monkeypatch.setattr(writer, "write_chunk", full)
    with pytest.raises(BadInput, match="No space left on device"):
        convert_head(_opts(s, tmp_path / "o.gguf"))
    assert list(tmp_path.iterdir()) == []


def _limit_file_size() -> None:  # runs in the child: 64 KiB files, and EFBIG rather than a signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_real_write_failure_through_the_cli(s: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.gguf"
    argv = [sys.executable, "-m", "lanebench.cli.main", "convert-head", str(s["hf"])]
    argv += ["--main", str(s["main"]), "-o", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=300)
    assert proc.returncode == 2
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["convert-head", "{missing}", "--main", "{main}", "-o", "{out}"], "not a folder"),
        (["convert-head", "{hf}", "--main", "{missing}", "-o", "{out}"], "does not exist"),
        (["convert-head", "{hf}", "--main", "{main}", "-o", "{out}", "--type", "q4_k"], "--type"),
        (["convert-head", "{hf}", "--main", "{main}", "-o", "{out}", "--dialect", "vllm"], "dialect"),
        (["gguf", "inspect", "{hf}/config.json"], "not a GGUF"),
        (["gguf", "translate", "{main}", "--to", "atomic", "-o", "{out}"], "not an assistant head"),
    ],
)
def test_cli_bad_input_is_one_line(s: dict[str, Path], tmp_path: Path, args: list[str], message: str) -> None:
    fill = {"hf": s["hf"], "main": s["main"], "out": tmp_path / "o.gguf", "missing": tmp_path / "missing"}
    argv = [a.format(**fill) for a in args]
    proc = subprocess.run([sys.executable, "-m", "lanebench.cli.main", *argv], capture_output=True, text=True)
    assert proc.returncode in (2, 3), proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
