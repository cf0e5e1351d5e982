"""vLLM's OpenAI-compatible server (``vllm serve``), started by lanebench for one lane.

**Not run here: no live test.** vLLM needs a GPU it supports, and this machine has none; every
part below is unit tested against ``--help`` text and response bodies recorded from vLLM's own
docs and source (``tests/fixtures/vllm/README.md`` says where each came from), never against a
running vLLM.

- **flags**: read from the build's own ``vllm serve --help=all`` (vLLM >= 0.10 prints only the
  group summary for a bare ``--help``), falling back to ``--help`` for older builds; a lane that
  needs a flag the build does not list is refused with a line naming the flag.
- **readiness**: ``GET /health`` (vLLM answers only once the engine has loaded).
- **the job**: the corpus tokenised by ``POST /tokenize``; streaming ``/v1/completions`` with
  the prompt as token ids, ``ignore_eos``, greedy, ``stream_options.include_usage`` and
  ``continuous_usage_stats`` (tokens per chunk come from the ``completion_tokens`` deltas, so a
  speculative step that emits several tokens counts them all).
- **figures**: client-side always; ``usage`` gives prompt_n / predicted_n; a build with
  ``--enable-per-request-metrics`` (vLLM >= 0.25) adds a ``metrics`` object to the final usage
  chunk, normalised here to prompt_ms / prompt_per_second / predicted_ms / predicted_per_second;
  ``--per-request-spec-decode-stats summary`` adds per-request draft counts (draft_n /
  draft_n_accepted).
- **counters**: Prometheus ``/metrics``; vLLM's ``vllm:spec_decode_*_total`` counters
  (``vllm/v1/spec_decode/metrics.py``) are summed over engines and renamed to the
  ``spec_decode_*_total`` names llama.cpp uses, per-position ones keyed ``{position="i"}``.

What it shares with SGLang (``--help`` parsing, the lane's refusals, planning, ``/tokenize``)
is ``engines.gpu_common.GpuServerEngine``; what every launched server needs, ``engines.common``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import Endpoint, LanePlan, Prompt, Request, StreamReader, Turn
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
    "install vLLM where a GPU it supports is (pip install vllm) and set the lane's server_bin to "
    "that environment's vllm executable"
)
_VERSION = re.compile(r"^\s*v?(\d+\.\d+(?:\.\d+)?[\w.+-]*)\s*$", re.MULTILINE)  # `vllm --version`


# lane fields → the vLLM flags lanebench sets from them (extra_args may not repeat these)
_OWNED = {
    "--host": "the engine (always 127.0.0.1)",
    "--port": "the engine (a free port)",
    "--max-num-seqs": "field 'slots'",
    "--max-model-len": "field 'ctx'",
    "--served-model-name": "field 'served_model'",
    "--kv-cache-dtype": "field 'kv'",
    "--model": "field 'model'",
}
_KV_ALIASES = {"bf16": "bfloat16"}  # lanebench's llama.cpp spelling → vLLM's


def speculative_config(lane: LaneSpec, model_tag: str) -> dict[str, Any]:
    """vLLM's ``--speculative-config`` for the lane's draft: B-1 speculative tokens a step.

    kind ``model`` → method ``draft_model`` with the draft's path (empty: the lane's own model);
    kind ``mtp`` → method ``mtp`` with the head's path."""
    draft = lane.draft
    assert draft is not None
    method = "draft_model" if draft.kind == "model" else "mtp"
    path = str(draft.path) if draft.path is not None else model_tag
    return {"method": method, "model": path, "num_speculative_tokens": draft.block_size - 1}


def build_argv(plan: LanePlan, port: int) -> list[str]:
    """``vllm serve`` for the plan; refuses (naming the flag) what the build's help lacks."""
    lane, help_ = plan.lane, plan.dialect
    assert isinstance(help_, ArgparseHelp) and plan.server_bin is not None
    label = f"lane {lane.name!r}"
    model_tag = str(plan.build_info["model_tag"])
    for flag in ("--host", "--port"):
        need_flag(help_, flag, label, "field 'server_bin'", "vLLM")
    need_flag(help_, "--max-num-seqs", label, "field 'slots'", "vLLM")
    need_flag(help_, "--max-model-len", label, "field 'ctx'", "vLLM")
    argv = [str(plan.server_bin), "serve", model_tag, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--max-num-seqs", str(lane.slots), "--max-model-len", str(plan.ctx // lane.slots)]
    if lane.model is not None and lane.served_model:
        need_flag(help_, "--served-model-name", label, "field 'served_model'", "vLLM")
        argv += ["--served-model-name", lane.served_model]
    if lane.kv != "f16":  # f16, lanebench's default, leaves vLLM's "auto": the model's own dtype
        kv = _KV_ALIASES.get(lane.kv, lane.kv)
        need_flag(help_, "--kv-cache-dtype", label, "field 'kv'", "vLLM")
        need_value(help_, "--kv-cache-dtype", kv, label, "kv", "vLLM")
        argv += ["--kv-cache-dtype", kv]
    extra = extra_flags(lane)
    if lane.draft is not None:
        need_flag(help_, "--speculative-config", label, "field 'draft'", "vLLM")
        spec = speculative_config(lane, model_tag)
        argv += ["--speculative-config", json.dumps(spec, separators=(",", ":"))]
        if help_.has("--per-request-spec-decode-stats") and "--per-request-spec-decode-stats" not in extra:
            argv += ["--per-request-spec-decode-stats", "summary"]
    if help_.has("--no-enable-prefix-caching") and not extra & {
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
    }:
        argv.append("--no-enable-prefix-caching")  # like llama.cpp's cache_prompt=false
    if plan.build_info.get("per_request_metrics") and "--enable-per-request-metrics" not in extra:
        argv.append("--enable-per-request-metrics")
    return argv + list(lane.extra_args)


def completion_body(
    model: str, prompt: Prompt, n_out: int, seed: int, *, include_metrics: bool = False
) -> dict[str, Any]:
    """The standard job for vLLM's ``/v1/completions``: exact prompt, fixed length, greedy."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": n_out,
        "ignore_eos": True,
        "temperature": 0.0,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    if include_metrics:
        body["include_metrics"] = True  # vLLM >= 0.25 with --enable-per-request-metrics
    return body


def spec_figures(stats: Mapping[str, Any]) -> dict[str, Any]:
    """vLLM's per-request ``speculative_decoding_stats`` → draft_n / draft_n_accepted."""
    out: dict[str, Any] = {}
    drafted, accepted = count(stats.get("num_draft_tokens")), count(stats.get("num_accepted_draft_tokens"))
    if drafted is not None and accepted is not None:
        out["draft_n"], out["draft_n_accepted"] = drafted, accepted
    steps = count(stats.get("num_spec_steps"))
    if steps is not None:
        out["spec_steps"] = steps
    return out


def usage_figures(usage: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The final usage chunk (and its ``metrics``, when the server adds them) as timings.

    ``time_to_first_token_ms`` runs from scheduling to the first token (prefill);
    ``generation_time_ms`` from the first token to the last, so the decode rate counts the
    tokens after the first, as lanebench's client-side decode rate does."""
    out: dict[str, Any] = {}
    prompt_n, predicted_n = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
    if prompt_n is not None:
        out["prompt_n"] = prompt_n
    if predicted_n is not None:
        out["predicted_n"] = predicted_n
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and count(details.get("cached_tokens")) is not None:
        out["cache_n"] = details["cached_tokens"]
    if not metrics:
        return out
    ttft = positive(metrics.get("time_to_first_token_ms"))
    if ttft is not None and prompt_n:
        out["prompt_ms"], out["prompt_per_second"] = ttft, prompt_n * 1000.0 / ttft
    gen = positive(metrics.get("generation_time_ms"))
    if gen is not None and predicted_n is not None and predicted_n > 1:
        out["predicted_ms"], out["predicted_per_second"] = gen, (predicted_n - 1) * 1000.0 / gen
    queue = metrics.get("queue_time_ms")
    if positive(queue) is not None or count(queue) == 0:  # 0 ms queued is a figure too
        out["queue_ms"] = queue
    spec = metrics.get("speculative_decoding")
    if isinstance(spec, dict):
        out.update(spec_figures(spec))
    return out


class VllmReader(StreamReader):
    """``/v1/completions`` chunks with continuous usage: tokens from ``completion_tokens``
    deltas, the figures from the final usage chunk (``choices == []``)."""

    def __init__(self) -> None:
        super().__init__()
        self._metrics: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> tuple[int, str]:
        err = error_text(chunk)
        if err is not None:
            self.error = err
        choices = chunk.get("choices")
        usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else None
        metrics = chunk.get("metrics")
        if isinstance(metrics, dict):
            self._metrics = metrics
        n, text = 0, ""
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            text = str(choice.get("text") or "")
            done = count(usage.get("completion_tokens")) if usage else None
            # continuous_usage_stats: a running count on every chunk; without it, the final usage
            # chunk's total (predicted_n) is all vLLM says
            n = self.running(done) if done is not None else self.one_per_chunk(text)
            stats = choice.get("speculative_decoding_stats")
            if isinstance(stats, dict):
                self.timings.update(spec_figures(stats))
        elif isinstance(choices, list) and usage is not None:  # the final usage chunk
            self.timings.update(usage_figures(usage, self._metrics))
            self.complete = True
        return n, text

    def missing_end(self) -> str:
        return "stream ended before vLLM's final usage chunk"


_PROM = re.compile(r"^vllm:(?P<name>spec_decode_\w+?_total)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[str, float]:
    """vLLM's ``/metrics`` speculative counters under llama.cpp's names.

    ``vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 12.0`` becomes
    ``spec_decode_num_drafts_total`` (summed over engines: data-parallel ranks each count their
    own); the per-position counter keeps only its position,
    ``spec_decode_num_accepted_tokens_per_pos_total{position="0"}``, as
    ``metrics.per_position_acceptance`` expects. ``*_created`` series are skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _PROM.match(line.strip())
        if not m:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        if not math.isfinite(value):
            continue
        labels = dict(_LABEL.findall(m["labels"] or ""))
        key = m["name"]
        if "position" in labels:
            key += f'{{position="{labels["position"]}"}}'
        out[key] = out.get(key, 0.0) + value
    return out


@register("vllm")
class Vllm(GpuServerEngine):
    display = "vLLM"

    def owned(self, lane: LaneSpec) -> dict[str, str]:
        owned = dict(_OWNED)
        if lane.draft is not None:
            owned["--speculative-config"] = "field 'draft'"
        return owned

    def find(self, lane: LaneSpec, label: str) -> Path:
        return find_bin(lane.server_bin, "vllm", label, HOW_TO_GET)

    @staticmethod
    @lru_cache(maxsize=32)
    def probe_help(binary: str, mtime_ns: int) -> ArgparseHelp:
        last = ""
        for extra in ("--help=all", "--help"):  # >= 0.10 lists only group names for a bare --help
            command = f"{binary} serve {extra}"
            _, out = run_text([binary, "serve", extra])
            parsed = parse_argparse_help(out, command)
            if parsed.has("--port") and parsed.has("--max-num-seqs"):
                break
            last = out
        else:
            raise NotFound(
                f"`{binary} serve --help` lists no --port / --max-num-seqs, so this is not a working "
                f"vLLM ({last_line(last)}); {HOW_TO_GET}"
            )
        _, out = run_text([binary, "--version"])
        m = _VERSION.search(out)  # the bare version line, not the INFO lines around it
        return ArgparseHelp(parsed.flags, parsed.choices, m[1] if m else None, command)

    def plan_info(self, lane: LaneSpec, help_: ArgparseHelp) -> dict[str, Any]:
        logs_stats = "--disable-log-stats" not in extra_flags(lane)
        return {"per_request_metrics": help_.has("--enable-per-request-metrics") and logs_stats}

    def argv(self, plan: LanePlan, port: int) -> list[str]:
        return build_argv(plan, port)

    def request(self, plan: LanePlan, prompt: Prompt, turn: Turn) -> Request:
        body = completion_body(
            str(plan.build_info["model"]),
            prompt,
            turn.n_out,
            turn.seed,
            include_metrics=bool(plan.build_info.get("per_request_metrics")),
        )
        return Request("/v1/completions", body, turn.n_in, turn.n_out)

    def reader(self) -> StreamReader:
        return VllmReader()

    async def counters(self, session: aiohttp.ClientSession, endpoint: Endpoint) -> dict[str, float]:
        try:
            async with session.get(f"{endpoint.base_url}/metrics", headers=endpoint.headers()) as resp:
                resp.raise_for_status()
                return parse_metrics(await resp.text())
        except aiohttp.ClientError:
            return {}
