"""SGLang's server (``python -m sglang.launch_server``), started by lanebench for one lane.

**Not run here: no live test.** SGLang needs a GPU it supports, and this machine has none;
every part below is unit tested against ``--help`` text and response bodies recorded from
SGLang's own docs and source (``tests/fixtures/sglang/README.md`` says where each came from),
never against a running SGLang.

- **binary**: the lane's ``server_bin`` is the Python of the environment SGLang is installed in
  (default ``python3`` on PATH), run as ``-m sglang.launch_server``; a ``server_bin`` named
  ``sglang*`` is the newer ``sglang serve`` entry point instead.
- **flags**: read from the build's ``--help``; a lane that needs a flag (or a
  ``--speculative-algorithm`` / ``--kv-cache-dtype`` value) the build does not list is refused
  with a line naming it.
- **readiness**: ``GET /health``.
- **the job**: the corpus tokenised by ``POST /tokenize`` when the build has it (else text
  prompts, whose length SGLang reports); streaming ``POST /generate`` with ``input_ids`` and
  ``sampling_params`` {max_new_tokens, temperature 0, ignore_eos}. The stream is SSE
  ``data: {"text", "output_ids", "meta_info"}``; ``text`` is the whole text so far (unless
  ``--stream-output``), so tokens per chunk come from ``meta_info.completion_tokens`` deltas and
  the text from the new suffix.
- **figures** (final chunk's ``meta_info``): prompt_tokens / completion_tokens / cached_tokens;
  with ``--enable-metrics`` (which lanebench passes when listed) ``decode_throughput`` gives
  predicted_per_second and, with ``e2e_latency``, prompt_ms (see ``meta_figures``); speculative
  counts are per request (``spec_*`` fields), there are no cumulative counters.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import LanePlan, Prompt, Request, StreamReader, Turn
from lanebench.engines.common import count, error_text, find_bin, last_line, positive, run_text
from lanebench.engines.gpu_common import (
    ArgparseHelp,
    GpuServerEngine,
    extra_flags,
    need_flag,
    need_value,
    parse_argparse_help,
)
from lanebench.engines.registry import register
from lanebench.errors import NotFound

HOW_TO_GET = (
    "install SGLang where a GPU it supports is (pip install sglang) and set the lane's server_bin "
    "to that environment's python (or its sglang executable)"
)
_VERSION_CODE = "import importlib.metadata as m; print(m.version('sglang'))"
_VERSION = re.compile(r"^\s*(\d+\.\d+[\w.+-]*)\s*$", re.MULTILINE)


def launch_command(binary: Path) -> list[str]:
    """How ``binary`` starts SGLang: ``sglang serve`` for the CLI, else ``-m sglang.launch_server``."""
    if binary.name.startswith("sglang"):
        return [str(binary), "serve"]
    return [str(binary), "-m", "sglang.launch_server"]


_OWNED = {
    "--model-path": "field 'model'",
    "--model": "field 'model'",
    "--host": "the engine (always 127.0.0.1)",
    "--port": "the engine (a free port)",
    "--max-running-requests": "field 'slots'",
    "--context-length": "field 'ctx'",
    "--served-model-name": "field 'served_model'",
    "--kv-cache-dtype": "field 'kv'",
}
_SPEC_FLAGS = (
    "--speculative-algorithm",
    "--speculative-draft-model-path",
    "--speculative-num-steps",
    "--speculative-eagle-topk",
    "--speculative-num-draft-tokens",
)


def speculative_args(lane: LaneSpec, model_tag: str, help_: ArgparseHelp) -> list[str]:
    """SGLang's flags for the lane's draft: a chain (top-k 1) verifying B tokens a step.

    kind ``model`` → ``STANDALONE`` (a small draft LLM; empty path: the lane's own model);
    kind ``mtp`` → ``EAGLE``, the algorithm SGLang's docs use for MTP heads (NEXTN is its alias).
    ``--speculative-num-draft-tokens`` counts the verified token too, so B-1 tokens are drafted
    in B-1 steps."""
    draft = lane.draft
    assert draft is not None
    label = f"lane {lane.name!r}"
    for flag in _SPEC_FLAGS:
        need_flag(help_, flag, label, "field 'draft'", "SGLang")
    algorithm = "STANDALONE" if draft.kind == "model" else "EAGLE"
    need_value(help_, "--speculative-algorithm", algorithm, label, "draft.kind", "SGLang")
    path = str(draft.path) if draft.path is not None else model_tag
    b = draft.block_size
    return [
        "--speculative-algorithm",
        algorithm,
        "--speculative-draft-model-path",
        path,
        "--speculative-num-steps",
        str(b - 1),
        "--speculative-eagle-topk",
        "1",
        "--speculative-num-draft-tokens",
        str(b),
    ]


def build_argv(plan: LanePlan, port: int) -> list[str]:
    """SGLang's launch command for the plan; refuses (naming the flag) what the help lacks."""
    lane, help_ = plan.lane, plan.dialect
    assert isinstance(help_, ArgparseHelp) and plan.server_bin is not None
    label = f"lane {lane.name!r}"
    model_tag = str(plan.build_info["model_tag"])
    need_flag(help_, "--max-running-requests", label, "field 'slots'", "SGLang")
    need_flag(help_, "--context-length", label, "field 'ctx'", "SGLang")
    argv = [*launch_command(plan.server_bin), "--model-path", model_tag]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    argv += ["--max-running-requests", str(lane.slots), "--context-length", str(plan.ctx // lane.slots)]
    if lane.model is not None and lane.served_model:
        need_flag(help_, "--served-model-name", label, "field 'served_model'", "SGLang")
        argv += ["--served-model-name", lane.served_model]
    if lane.kv != "f16":  # f16, lanebench's default, leaves SGLang's "auto": the model's own dtype
        need_flag(help_, "--kv-cache-dtype", label, "field 'kv'", "SGLang")
        need_value(help_, "--kv-cache-dtype", lane.kv, label, "kv", "SGLang")
        argv += ["--kv-cache-dtype", lane.kv]
    if lane.draft is not None:
        argv += speculative_args(lane, model_tag, help_)
    extra = extra_flags(lane)
    if help_.has("--disable-radix-cache") and "--disable-radix-cache" not in extra:
        argv.append("--disable-radix-cache")  # like llama.cpp's cache_prompt=false
    if help_.has("--enable-metrics") and "--enable-metrics" not in extra:
        argv.append("--enable-metrics")  # adds decode_throughput to meta_info
    return argv + list(lane.extra_args)


def generate_body(prompt: Prompt, n_out: int) -> dict[str, Any]:
    """The standard job for SGLang's native ``/generate``: exact prompt, fixed length, greedy.

    (No seed: greedy needs none, and older SGLang refuses sampling keys it does not know.)"""
    body: dict[str, Any] = {"input_ids": prompt} if isinstance(prompt, list) else {"text": prompt}
    body["sampling_params"] = {"max_new_tokens": n_out, "temperature": 0.0, "ignore_eos": True}
    body["stream"] = True
    return body


_DRAFTED = ("spec_num_proposed_drafts", "spec_proposed_drafts", "spec_draft_token_num")
_ACCEPTED = ("spec_num_correct_drafts", "spec_accepted_drafts", "spec_accept_token_num")


def _first_count(meta: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = count(meta.get(key))
        if value is not None:
            return value
    return None


def meta_figures(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The final chunk's ``meta_info`` as llama.cpp-named timings.

    - prompt_n / predicted_n / cache_n: ``prompt_tokens`` / ``completion_tokens`` /
      ``cached_tokens``.
    - predicted_per_second: ``decode_throughput`` (``--enable-metrics``): tokens after the first
      over first-token-to-finish, as SGLang's API server times them (one release divides all
      tokens by that time); predicted_ms = (completion_tokens - 1) / decode_throughput.
    - prompt_ms = ``e2e_latency`` - predicted_ms: request received to first token, so it holds
      queueing and tokenisation as well as prefill; prompt_per_second = prompt_n / prompt_ms.
    - draft_n / draft_n_accepted: the drafted and accepted counts SGLang reports per request —
      ``spec_num_proposed_drafts`` / ``spec_num_correct_drafts`` (newest), their aliases
      ``spec_proposed_drafts`` / ``spec_accepted_drafts``, or ``spec_draft_token_num``
      (= verify steps x (num_draft_tokens - 1)) / ``spec_accept_token_num`` (0.5.x). Builds
      that report only ``spec_verify_ct`` give no draft count, so neither is set; the verify
      steps are kept as ``spec_verify_ct`` (SGLang's accept length is completion_tokens / it).
    """
    out: dict[str, Any] = {}
    prompt_n, predicted_n = count(meta.get("prompt_tokens")), count(meta.get("completion_tokens"))
    if prompt_n is not None:
        out["prompt_n"] = prompt_n
    if predicted_n is not None:
        out["predicted_n"] = predicted_n
    cached = count(meta.get("cached_tokens"))
    if cached is not None:
        out["cache_n"] = cached
    rate = positive(meta.get("decode_throughput"))
    if rate is not None and predicted_n is not None and predicted_n > 1:
        out["predicted_per_second"] = rate
        out["predicted_ms"] = (predicted_n - 1) * 1000.0 / rate
        e2e = positive(meta.get("e2e_latency"))
        if e2e is not None and prompt_n:
            prompt_ms = e2e * 1000.0 - out["predicted_ms"]
            if prompt_ms > 0:
                out["prompt_ms"], out["prompt_per_second"] = prompt_ms, prompt_n * 1000.0 / prompt_ms
    verify = count(meta.get("spec_verify_ct"))
    if verify is not None:
        out["spec_verify_ct"] = verify
    drafted, accepted = _first_count(meta, _DRAFTED), _first_count(meta, _ACCEPTED)
    if drafted is not None and accepted is not None:
        out["draft_n"], out["draft_n_accepted"] = drafted, accepted
    return out


class SGLangReader(StreamReader):
    """``/generate`` chunks: tokens from ``completion_tokens`` deltas, text from the new suffix
    of the cumulative ``text``, figures from the chunk whose ``finish_reason`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self._text = ""

    def _new_text(self, chunk: Mapping[str, Any], text: str, done: int | None) -> str:
        ids = chunk.get("output_ids")
        incremental = isinstance(ids, list) and done is not None and len(ids) < done  # --stream-output
        new = text[len(self._text) :] if not incremental and text.startswith(self._text) else text
        self._text += new
        return new

    def feed(self, chunk: dict[str, Any]) -> tuple[int, str]:
        err = error_text(chunk)
        if err is not None:
            self.error = err
        meta = chunk.get("meta_info")
        if not isinstance(meta, dict):
            return 0, ""
        done = count(meta.get("completion_tokens"))
        text = self._new_text(chunk, str(chunk.get("text") or ""), done)
        n = self.running(done) if done is not None else self.one_per_chunk(text)
        if meta.get("finish_reason"):
            self.timings.update(meta_figures(meta))
            self.complete = True
        return n, text

    def missing_end(self) -> str:
        return "stream ended before SGLang's final chunk (the one with a finish_reason)"


@register("sglang")
class SGLang(GpuServerEngine):
    display = "SGLang"
    tokenize_optional = True  # builds before /tokenize: text prompts, their length reported back

    def owned(self, lane: LaneSpec) -> dict[str, str]:
        owned = dict(_OWNED)
        if lane.draft is not None:
            owned.update(dict.fromkeys(_SPEC_FLAGS, "field 'draft'"))
        return owned

    def find(self, lane: LaneSpec, label: str) -> Path:
        """The lane's ``server_bin``, else the first ``python3`` on PATH (checked for SGLang by
        the help probe, whose failure names the field)."""
        if lane.server_bin is not None:
            return find_bin(lane.server_bin, "python", label, HOW_TO_GET)
        for name in ("python3", "python"):
            if shutil.which(name):
                return find_bin(None, name, label, HOW_TO_GET)
        raise NotFound(f"{label}: no python3 on PATH and the lane sets no 'server_bin'; {HOW_TO_GET}")

    @staticmethod
    @lru_cache(maxsize=32)
    def probe_help(binary: str, mtime_ns: int) -> ArgparseHelp:
        launch = launch_command(Path(binary))
        command = " ".join([*launch, "--help"])
        _, out = run_text([*launch, "--help"])
        parsed = parse_argparse_help(out, command)
        if not (parsed.has("--model-path") and parsed.has("--port")):
            raise NotFound(
                f"`{command}` lists no --model-path / --port, so SGLang is not there "
                f"({last_line(out)}); {HOW_TO_GET}"
            )
        version = None
        if not Path(binary).name.startswith("sglang"):
            rc, out = run_text([binary, "-c", _VERSION_CODE])
            m = _VERSION.search(out) if rc == 0 else None  # the bare version line, not warnings
            version = m[1] if m else None
        return ArgparseHelp(parsed.flags, parsed.choices, version, command)

    def argv(self, plan: LanePlan, port: int) -> list[str]:
        return build_argv(plan, port)

    def request(self, plan: LanePlan, prompt: Prompt, turn: Turn) -> Request:
        return Request("/generate", generate_body(prompt, turn.n_out), turn.n_in, turn.n_out)

    def reader(self) -> StreamReader:
        return SGLangReader()
