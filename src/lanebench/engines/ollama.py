"""Ollama: an ``ollama serve`` lanebench starts, or one already running at the lane's ``url``.

**Not run here: no live test.** Ollama is not installed on this machine and models cannot be
pulled from it; every part below is unit tested against ``ollama serve --help`` text and
response bodies recorded from Ollama's own docs and source (``tests/fixtures/ollama/README.md``
says where each came from), never against a running Ollama.

- **model**: Ollama serves models it has pulled (or created); ``served_model`` names one
  (``llama3.2:1b``). ``prepare`` checks ``/api/tags`` for it and loads it with the run's options,
  so a missing model is a one-line error and the first request does not pay for the load.
- **launch**: ``ollama serve`` takes no flags, only environment variables; the build's
  ``serve --help`` lists the ones it knows (its dialect). ``OLLAMA_HOST=127.0.0.1:PORT`` must be
  set per port, so the command is ``env OLLAMA_HOST=… OLLAMA_NUM_PARALLEL=<slots>
  [OLLAMA_KV_CACHE_TYPE=<kv>] [OLLAMA_FLASH_ATTENTION=0|1] ollama serve``.
- **readiness**: ``GET /api/version``.
- **the job**: Ollama takes no token ids, so prompts are text sent ``raw`` (no template) to
  ``POST /api/generate`` with ``options`` {num_predict, temperature 0, seed, num_ctx}; Ollama has
  no ``ignore_eos``, so a reply can stop short at an end-of-sequence token (its ``eval_count``
  says so). The stream is NDJSON ``{"response": "...", "done": false}``.
- **figures** (final ``done`` chunk): prompt_eval_count / prompt_eval_duration (ns) /
  eval_count / eval_duration (ns) → prompt_n, prompt_ms, prompt_per_second, predicted_n,
  predicted_ms, predicted_per_second (Ollama's own eval_count / eval_duration). No speculative
  decoding, no counters.
"""

from __future__ import annotations

import http.client
import re
import shutil
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import (
    Attached,
    Endpoint,
    Engine,
    LanePlan,
    PlanContext,
    Prompt,
    Request,
    StreamReader,
    Turn,
    api_key,
)
from lanebench.engines.common import (
    count,
    error_text,
    find_bin,
    labelled,
    last_line,
    positive,
    refuse_set,
    run_text,
    slot_ctx,
)
from lanebench.engines.registry import register
from lanebench.errors import BadInput, LaneFailed, NotFound
from lanebench.server.process import ServerProcess

HOW_TO_GET = "install Ollama (https://ollama.com/download) or set the lane's server_bin, or give its url"
READY_PATH = "/api/version"
KV_TYPES = ("f16", "q8_0", "q4_0")  # OLLAMA_KV_CACHE_TYPE (docs/faq.md); quantised ones need flash attention
# environment variables lanebench sets from lane fields (the lane's env may not set them too)
_OWNED_ENV = {
    "OLLAMA_HOST": "the engine (127.0.0.1 and a free port)",
    "OLLAMA_NUM_PARALLEL": "field 'slots'",
    "OLLAMA_KV_CACHE_TYPE": "field 'kv'",
    "OLLAMA_FLASH_ATTENTION": "field 'flash_attn'",
}


@dataclass(frozen=True, slots=True)
class OllamaHelp:
    """What ``ollama serve --help`` documents: the environment variables this build reads."""

    env_vars: frozenset[str]
    version: str | None = None
    command: str = ""

    def has(self, name: str) -> bool:
        return name in self.env_vars

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "help": self.command, "env_vars": sorted(self.env_vars)}


_ENV_LINE = re.compile(r"^\s+(OLLAMA_[A-Z0-9_]+)\s")
_VERSION = re.compile(r"version is (\S+)")


def parse_serve_help(text: str, command: str = "", version: str | None = None) -> OllamaHelp:
    """The ``OLLAMA_*`` variables listed under ``Environment Variables:`` in ``serve --help``."""
    names: set[str] = set()
    in_env = False
    for line in text.splitlines():
        if line.strip() == "Environment Variables:":
            in_env = True
            continue
        if in_env and (m := _ENV_LINE.match(line)):
            names.add(m[1])
    return OllamaHelp(frozenset(names), version, command)


@lru_cache(maxsize=32)
def _probe(binary: str, mtime_ns: int) -> OllamaHelp:
    command = f"{binary} serve --help"
    _, out = run_text([binary, "serve", "--help"], timeout_s=30.0)
    parsed = parse_serve_help(out, command)
    if not parsed.has("OLLAMA_HOST"):
        raise NotFound(f"`{command}` documents no OLLAMA_HOST, so this is not Ollama ({last_line(out)})")
    _, out = run_text([binary, "--version"], timeout_s=30.0)
    m = _VERSION.search(out)
    return OllamaHelp(parsed.env_vars, m[1] if m else None, command)


def probe(binary: Path, label: str = "ollama") -> OllamaHelp:
    """What ``binary serve --help`` documents, read once per binary and mtime."""
    return labelled(label, _probe, binary)


def serve_env(lane: LaneSpec, help_: OllamaHelp) -> dict[str, str]:
    """The ``OLLAMA_*`` settings a lane asks of ``ollama serve`` (all but OLLAMA_HOST); refuses,
    naming the variable, what this build's help does not document."""
    label = f"lane {lane.name!r}"

    def need(name: str, field: str) -> None:
        if not help_.has(name):
            raise BadInput(
                f"{label}: field {field!r} needs {name}, which this Ollama build does not document in "
                f"`{help_.command}` (version {help_.version or 'unknown'}); upgrade it or change the lane"
            )

    need("OLLAMA_NUM_PARALLEL", "slots")
    env = {"OLLAMA_NUM_PARALLEL": str(lane.slots)}
    if lane.kv != "f16":
        need("OLLAMA_KV_CACHE_TYPE", "kv")
        env["OLLAMA_KV_CACHE_TYPE"] = lane.kv
    flash = {"on": "1", "off": "0"}.get(lane.flash_attn)
    if flash is None and lane.kv != "f16":
        flash = "1"  # Ollama quantises the KV cache only with flash attention on
    if flash is not None:
        need("OLLAMA_FLASH_ATTENTION", "flash_attn")
        env["OLLAMA_FLASH_ATTENTION"] = flash
    return env


def serve_argv(env_bin: str, binary: Path, port: int, env: Mapping[str, str]) -> list[str]:
    """``env OLLAMA_HOST=127.0.0.1:PORT … ollama serve`` (Ollama reads its port from the env)."""
    settings = [f"OLLAMA_HOST=127.0.0.1:{port}", *(f"{k}={v}" for k, v in sorted(env.items()))]
    return [env_bin, *settings, str(binary), "serve"]


def load_options(plan: LanePlan) -> dict[str, Any]:
    """The options that decide how Ollama loads the model: the same on every request, or it
    reloads. ``num_ctx`` is one sequence's context (Ollama multiplies it by the slots)."""
    lane = plan.lane
    opts: dict[str, Any] = {"num_ctx": plan.ctx // lane.slots}
    if lane.threads is not None:
        opts["num_thread"] = lane.threads
    if lane.gpu_layers is not None:
        opts["num_gpu"] = lane.gpu_layers
    return opts


def generate_body(
    model: str, prompt: str, n_out: int, seed: int, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The standard job for ``POST /api/generate``: raw text prompt, fixed length, greedy."""
    return {
        "model": model,
        "prompt": prompt,
        "raw": True,  # no prompt template: the text is the whole prompt
        "stream": True,
        "options": {**options, "num_predict": n_out, "temperature": 0.0, "seed": seed},
    }


def final_figures(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """The ``done`` chunk's counts and nanosecond durations as llama.cpp-named timings."""
    out: dict[str, Any] = {}
    prompt_n, prompt_ns = count(chunk.get("prompt_eval_count")), positive(chunk.get("prompt_eval_duration"))
    if prompt_n is not None:
        out["prompt_n"] = prompt_n
        if prompt_ns is not None:
            out["prompt_ms"] = prompt_ns / 1e6
            out["prompt_per_second"] = prompt_n * 1e9 / prompt_ns
    predicted_n, eval_ns = count(chunk.get("eval_count")), positive(chunk.get("eval_duration"))
    if predicted_n is not None:
        out["predicted_n"] = predicted_n
        if eval_ns is not None:
            out["predicted_ms"] = eval_ns / 1e6
            out["predicted_per_second"] = predicted_n * 1e9 / eval_ns  # Ollama's own definition
    for key, name in (("load_duration", "load_ms"), ("total_duration", "total_ms")):
        ns = positive(chunk.get(key))
        if ns is not None:
            out[name] = ns / 1e6
    if isinstance(chunk.get("done_reason"), str):
        out["done_reason"] = chunk["done_reason"]
    return out


class OllamaReader(StreamReader):
    """NDJSON chunks: figures on the ``done`` chunk. Nothing says how many tokens a chunk
    carries (Ollama's runner holds back text until its UTF-8 is whole, so one may carry
    several): one per non-empty ``response``, and client decode counts ``eval_count``."""

    def feed(self, chunk: dict[str, Any]) -> tuple[int, str]:
        err = error_text(chunk)
        if err is not None:
            self.error = err
        text = chunk.get("response")
        text = text if isinstance(text, str) else ""
        if chunk.get("done") is True:
            self.timings.update(final_figures(chunk))
            self.complete = True
        return self.one_per_chunk(text), text

    def missing_end(self) -> str:
        return "stream ended before Ollama's final chunk (done: true)"


def probe_version(url: str, key: str | None, timeout_s: float = 5.0) -> str | None:
    """GET ``/api/version`` of an Ollama at ``url``: None when it answers 200, else why not."""
    parts = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout_s)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        conn.request("GET", f"{parts.path}{READY_PATH}", headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"cannot reach {url} ({getattr(exc, 'strerror', None) or exc})"
    finally:
        conn.close()
    return None if status == 200 else f"HTTP {status} from {url}{READY_PATH} (expected 200)"


def has_model(names: set[str], wanted: str) -> bool:
    """Whether ``/api/tags`` lists ``wanted`` (a name without a tag means ``:latest``)."""
    return wanted in names or (":" not in wanted and f"{wanted}:latest" in names)


def _refuse_fields(lane: LaneSpec, label: str) -> None:
    """What no Ollama lane takes: a model file, a draft, flags; it needs a pulled model's name."""
    if not lane.served_model:
        raise BadInput(
            f"{label}: field 'served_model': engine 'ollama' needs the name of a model Ollama has "
            "pulled (e.g. 'llama3.2:1b'; see `ollama list`)"
        )
    if lane.model is not None:
        raise BadInput(
            f"{label}: field 'model': Ollama serves the models it has pulled or created; name one "
            "in 'served_model' (a GGUF becomes one with `ollama create NAME -f Modelfile`)"
        )
    if lane.draft is not None:
        raise BadInput(f"{label}: field 'draft': Ollama has no speculative decoding")
    hint = "`ollama serve` takes no flags; set OLLAMA_* variables in 'env'"
    refuse_set(label, "Ollama", {"extra_args": (lane.extra_args, hint)})


def _check_started(lane: LaneSpec, label: str) -> None:
    """What an Ollama lanebench starts refuses: a key, a KV type it lacks, a quantised KV cache
    without flash attention, ``env`` setting a variable lanebench sets."""
    if lane.api_key_env:
        raise BadInput(
            f"{label}: field 'api_key_env' is for an Ollama at a 'url'; the one lanebench starts has no key"
        )
    if lane.kv not in KV_TYPES:
        raise BadInput(
            f"{label}: field 'kv' = {lane.kv!r}: Ollama's OLLAMA_KV_CACHE_TYPE takes {', '.join(KV_TYPES)}"
        )
    if lane.kv != "f16" and lane.flash_attn == "off":
        raise BadInput(
            f"{label}: field 'kv' = {lane.kv!r} needs flash attention in Ollama; set flash_attn "
            "to 'on' or 'auto'"
        )
    for name, source in _OWNED_ENV.items():
        if name in lane.env:
            raise BadInput(f"{label}: field 'env' sets {name}, which lanebench sets from {source}")


@register("ollama")
class Ollama(Engine):
    lane_fields = frozenset({"url", "api_key_env"})

    def plan(self, lane: LaneSpec, ctx: PlanContext) -> LanePlan:
        label = f"lane {lane.name!r}"
        _refuse_fields(lane, label)
        per_slot = slot_ctx(lane, ctx.job, label)
        if lane.url:
            return self._plan_attached(lane, label, per_slot)
        _check_started(lane, label)
        binary = find_bin(lane.server_bin, "ollama", label, HOW_TO_GET)
        help_ = probe(binary, label)
        env_bin = shutil.which("env") or "/usr/bin/env"
        plan = LanePlan(
            lane,
            self,
            per_slot * lane.slots,
            build=str(binary),
            build_info={
                "engine": "ollama",
                **help_.to_dict(),
                "model": lane.served_model,
                "serve_env": serve_env(lane, help_),
                "env_bin": env_bin,
            },
            server_bin=binary,
            dialect=help_,
        )
        plan.argv_preview = plan.argv(0)
        return plan

    def _plan_attached(self, lane: LaneSpec, label: str, per_slot: int) -> LanePlan:
        for name, value in (
            ("server_bin", lane.server_bin),
            ("env", lane.env),
            ("kv", None if lane.kv == "f16" else lane.kv),
            ("flash_attn", None if lane.flash_attn == "auto" else lane.flash_attn),
        ):
            if value not in (None, {}, []):
                raise BadInput(
                    f"{label}: field {name!r} configures an Ollama lanebench starts; the one at 'url' "
                    "runs already (set it where it is started)"
                )
        api_key(lane)  # a named variable that is not set is a planning error
        root = str(lane.url)
        return LanePlan(
            lane,
            self,
            per_slot * lane.slots,
            build=root,
            build_info={"engine": "ollama", "url": root, "model": lane.served_model},
        )

    def argv(self, plan: LanePlan, port: int) -> list[str]:
        if plan.server_bin is None:  # attached: nothing to start
            return []
        env = {str(k): str(v) for k, v in plan.build_info["serve_env"].items()}
        return serve_argv(str(plan.build_info["env_bin"]), plan.server_bin, port, env)

    def endpoint(self, plan: LanePlan, log_path: Path, load_timeout_s: float) -> Endpoint:
        label = f"lane {plan.lane.name!r}"
        if plan.server_bin is None:
            root, key = str(plan.lane.url), api_key(plan.lane)
            return Attached(root, label, lambda: probe_version(root, key), key=key)
        return ServerProcess(
            plan.argv,
            log_path,
            label=label,
            env=plan.lane.env,
            load_timeout_s=load_timeout_s,
            ready_path=READY_PATH,
        )

    async def prepare(self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan) -> None:
        """Check the model is pulled, then load it with the run's options."""
        label, name = f"lane {plan.lane.name!r}", str(plan.lane.served_model)
        async with session.get(f"{endpoint.base_url}/api/tags", headers=endpoint.headers()) as resp:
            resp.raise_for_status()
            data = await resp.json()
        models = data.get("models", []) if isinstance(data, dict) else []
        names = {str(m.get(k)) for m in models if isinstance(m, dict) for k in ("name", "model") if m.get(k)}
        if not has_model(names, name):
            raise LaneFailed(
                f"{label}: field 'served_model': Ollama at {endpoint.base_url} has no model {name!r}; "
                f"pull it first: ollama pull {name}"
            )
        body = {"model": name, "prompt": "", "stream": False, "options": load_options(plan)}
        timeout = aiohttp.ClientTimeout(total=None)  # loading a large model takes minutes
        async with session.post(
            f"{endpoint.base_url}/api/generate", json=body, headers=endpoint.headers(), timeout=timeout
        ) as resp:
            if resp.status != 200:
                text = (await resp.text())[:200]
                raise LaneFailed(f"{label}: Ollama could not load {name!r}: HTTP {resp.status}: {text}")

    def request(self, plan: LanePlan, prompt: Prompt, turn: Turn) -> Request:
        if not isinstance(prompt, str):
            raise BadInput(f"lane {plan.lane.name!r}: Ollama takes text prompts, not token ids")
        body = generate_body(str(plan.lane.served_model), prompt, turn.n_out, turn.seed, load_options(plan))
        return Request("/api/generate", body, turn.n_in, turn.n_out)

    def reader(self) -> StreamReader:
        return OllamaReader()
