"""Fuzz targets for the files a user hands lanebench: an HF checkpoint and a lanes file.

Each target exercises the code as the CLI would: ``convert-head`` on a checkpoint folder
whose ``config.json`` or ``model.safetensors`` is the mutated input, next to valid files;
``run``'s lanes-file loading and planning (path expansion, model and draft file checks, argv,
the draft check) without starting a server. The valid parts come from one tiny fixture (a
32-token tokenizer, a 32-wide gemma4 main model and a 16-wide assistant), built once per
machine into a shared temp folder and reused by every process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from unittest import mock

from lanebench import __version__
from lanebench.config.lanesfile import MAX_LINES, load_lanes
from lanebench.config.run import RunConfig
from lanebench.engines.llamacpp import engine as llamacpp
from lanebench.engines.llamacpp.dialect import Dialect, parse_dialect
from lanebench.errors import BadInput, LanebenchError
from lanebench.gguf import hf
from lanebench.gguf.convert import ConvertOptions, convert_head, verify
from lanebench.gguf.shapes import FULL, SWA, HeadShape, MainShape
from lanebench.gguf.st_io import SINGLE_FILE, Checkpoint, StPlan, checkpoint_files, write_safetensors
from lanebench.gguf.synth import synth_assistant, synth_main
from lanebench.orchestration import plan as runner
from tests.fuzz.harness import Target
from tests.gguf_fixtures import tokenizer_gguf

REPO = Path(__file__).resolve().parents[2]
HELP = REPO / "tests" / "fixtures" / "help"
FIXTURE_VERSION = 1
N_VOCAB = 32
MAIN = MainShape("fuzz-gemma4", 32, (SWA, FULL), 1, 1, 1, 8, 16, 32, sliding_window=16, vocab=N_VOCAB)
HEAD = HeadShape(hidden=16, layer_types=(SWA, FULL), ffn=32)
CLASS = "Gemma4AssistantForCausalLM"


@dataclass(frozen=True, slots=True)
class Fixture:
    """Valid files the mutated input sits next to."""

    root: Path

    @property
    def main(self) -> Path:
        return self.root / "main.gguf"

    @property
    def head(self) -> Path:
        return self.root / "head.gguf"

    @property
    def hf(self) -> Path:
        return self.root / "hf"

    @property
    def server_bin(self) -> Path:
        return self.root / "llama-server"


def _build(d: Path) -> None:
    tok = tokenizer_gguf(d / "tok.gguf", N_VOCAB)
    synth_main(d / "main.gguf", MAIN, tok)
    synth_assistant(d / "hf", MAIN, HEAD, CLASS)
    convert_head(ConvertOptions(d / "hf", d / "main.gguf", d / "head.gguf"))
    (d / "llama-server").write_text("#!/bin/sh\nexit 0\n")  # never run: the dialect is given
    (d / "llama-server").chmod(0o755)


@cache
def fixture() -> Fixture:
    """The shared fixture folder, built once (atomically: concurrent builders race harmlessly)."""
    root = Path(tempfile.gettempdir()) / f"lanebench-fuzz-{os.getuid()}-{__version__}-v{FIXTURE_VERSION}"
    if not (root / "head.gguf").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
        _build(tmp)
        try:
            tmp.rename(root)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return Fixture(root)


@cache
def dialect() -> Dialect:
    """The upstream build 11434's dialect, from its recorded --version and --help."""
    version, help_text = ((HELP / f"b11434.{ext}").read_text(encoding="utf-8") for ext in ("version", "help"))
    return parse_dialect(version, help_text)


# ---- convert-head ----------------------------------------------------------------------


def _convert(hf_dir: Path, out_dir: Path) -> None:
    """What ``lanebench convert-head HF_DIR --main MAIN -o OUT --verify`` calls, in order."""
    try:  # the CLI sizes its progress bar first; on failure a missing config is the clearer error
        sum(f.stat().st_size for f in checkpoint_files(hf_dir))
    except BadInput:
        hf.read_config(hf_dir)
        raise
    result = convert_head(ConvertOptions(hf_dir, fixture().main, out_dir / "head.gguf"))
    verify(hf_dir, result.out, result.mapped)


@contextlib.contextmanager
def _checkpoint(config: Path, weights: Path) -> Iterator[Path]:
    """A temporary checkpoint folder holding (links to) ``config`` and ``weights``."""
    with tempfile.TemporaryDirectory(prefix="lanebench-fuzz-") as tmp:
        d = Path(tmp) / "hf"
        d.mkdir()
        (d / "config.json").symlink_to(config.resolve())
        (d / SINGLE_FILE).symlink_to(weights.resolve())
        yield d


def _config_seeds(scratch: Path) -> list[bytes]:
    cfg = json.loads((fixture().hf / "config.json").read_text())
    unified = {**cfg, "architectures": ["Gemma4UnifiedAssistantForCausalLM"]}
    unified["model_type"] = "gemma4_unified_assistant"
    capped = json.loads(json.dumps(cfg))
    capped["text_config"].update(final_logit_softcapping=30.0, rope_parameters={})
    return [
        json.dumps(cfg, indent=2).encode(),
        json.dumps(cfg, separators=(",", ":")).encode(),
        json.dumps(unified).encode(),
        json.dumps(capped).encode(),
    ]


def _run_config(path: Path) -> None:
    with _checkpoint(path, fixture().hf / SINGLE_FILE) as d:
        _convert(d, d.parent)


def _safetensors_seeds(scratch: Path) -> list[bytes]:
    src = fixture().hf / SINGLE_FILE
    ck = Checkpoint(fixture().hf)
    try:
        arrays = {name: ck.raw(name).copy() for name in ck.tensors}
    finally:
        ck.close()

    def plan(name: str, as_name: str | None = None) -> StPlan:
        t = ck.tensors[name]
        return StPlan(as_name or name, t.dtype, t.shape, lambda: iter([arrays[name]]))

    names = list(arrays)
    write_safetensors(scratch / "reversed.safetensors", [plan(n) for n in names[::-1]], {"by": "fuzz"})
    tied = [plan(n) for n in names] + [plan("model.embed_tokens.weight", "lm_head.weight")]
    write_safetensors(scratch / "tied.safetensors", tied, {})
    return [src.read_bytes()] + [
        (scratch / n).read_bytes() for n in ("reversed.safetensors", "tied.safetensors")
    ]


def _run_safetensors(path: Path) -> None:
    with _checkpoint(fixture().hf / "config.json", path) as d:
        _convert(d, d.parent)


# ---- lanes file ------------------------------------------------------------------------


def _lanes_seeds(scratch: Path) -> list[bytes]:
    fx = fixture()
    crafted = f"""
[defaults]
model = "{fx.main}"
server_bin = "{fx.server_bin}"
threads = 2
ctx = 4096
env = {{ LLAMA_ARG_X = "1" }}

[[lane]]
name = "plain"
kv = "q8_0"
flash_attn = "on"
extra_args = ["--no-mmap"]
notes = "a note"

[[lane]]
name = "mtp"
draft = {{ kind = "mtp", path = "{fx.head}", block_size = 3, p_min = 0.5 }}

[[lane]]
name = "self-draft"
slots = 1
gpu_layers = 999
draft = {{ kind = "model", block_size = 4, gpu_layers = 0 }}
env = {{ OTHER = "y" }}

[[lane]]
name = "placed"
split_mode = "layer"
tensor_split = [3, 1.5]
main_gpu = 0
devices = "none"
rpc_local = [{{ threads = 2, devices = ["CPU"], cache = true }}, {{ port = 50100, env = {{ A = "1" }} }}]
"""
    default = (REPO / "examples" / "default-lanes.toml").read_text(encoding="utf-8")
    seed = (REPO / "examples" / "gemma4-seed-lanes.toml").read_text(encoding="utf-8")
    seed = re.sub(r'(?m)^model = ".*"', f'model = "{fx.main}"', seed)
    seed = re.sub(r'path = "[^"]*"', f'path = "{fx.head}"', seed)
    seed = re.sub(r'(?m)^server_bin = "[^"]*"', f'server_bin = "{fx.server_bin}"', seed)
    return [default.encode(), seed.encode(), crafted.encode()]


def _run_lanes(path: Path) -> None:
    """``lanebench run LANES``'s loading and planning, with the build's dialect given.

    A lanes file's contract is one line per problem (file, lane, field), at most
    ``MAX_LINES`` + 1 lines; a message that keeps it is folded into one line for the harness,
    which counts any other multi-line message as a fault."""
    fx = fixture()
    opts = RunConfig(out_dir=path.parent, server_bin=fx.server_bin)
    try:
        lanes = load_lanes(path)
        with (
            mock.patch.object(llamacpp, "probe", lambda binary: dialect()),
            mock.patch.object(llamacpp, "default_model_path", lambda: fx.main),
        ):
            runner.plan_lanes(lanes, opts)
    except LanebenchError as exc:
        lines = str(exc).splitlines()
        if len(lines) < 2 or len(lines) > MAX_LINES + 1 or not all(line.strip() for line in lines):
            raise
        raise type(exc)(f"{lines[0]} (and {len(lines) - 1} more lines, one per problem)") from exc


TARGETS: list[Target] = [
    Target("convert-head-config", _config_seeds, _run_config, ".json"),
    Target("convert-head-safetensors", _safetensors_seeds, _run_safetensors, ".safetensors"),
    Target("lanes-file", _lanes_seeds, _run_lanes, ".toml"),
]
