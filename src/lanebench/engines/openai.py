"""Any OpenAI-compatible server already running at a URL: no launch, no load time.

The job goes to streaming ``/v1/completions`` with ``stream_options.include_usage`` and, unless
the server refuses them, the fields of ``EXTRA_FIELDS`` (``cache_prompt: false`` among them, and
a running token count on every chunk, so tokens are never taken for chunks). The
client-side figures are always there; the engine's own come when the server adds them
(llama-server puts ``timings`` on its last chunk). Prompts are token ids when the server can
tokenise for us (llama.cpp's or vLLM's ``/tokenize``), else text, and the server's reported
prompt length (``usage.prompt_tokens``) is checked against the job's. The API key comes from
the environment variable the lane names and only ever travels in a request header.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import (
    Attached,
    CacheUse,
    Endpoint,
    Engine,
    LanePlan,
    PlanContext,
    Prompt,
    Request,
    StreamReader,
    Turn,
    api_key,
    needed_ctx,
)
from lanebench.engines.registry import register
from lanebench.errors import BadInput
from lanebench.records.samples import TokenCount

_LLAMA_ONLY = ("server_bin", "draft", "extra_args", "env", "threads", "gpu_layers", "ctx")


def _api_root(url: str) -> str:
    """``http://h:8000/v1`` and ``http://h:8000`` both mean the server at ``http://h:8000``."""
    return url[: -len("/v1")] if url.endswith("/v1") else url


def probe_models(url: str, key: str | None, timeout_s: float = 5.0) -> tuple[str | None, list[str]]:
    """GET ``/v1/models``: (None, model ids) when it answers 200, else (why not, [])."""
    parts = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout_s)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        conn.request("GET", f"{parts.path}/v1/models", headers=headers)
        resp = conn.getresponse()
        body = resp.read(1 << 20)
    except (OSError, http.client.HTTPException) as exc:
        return f"cannot reach {url} ({getattr(exc, 'strerror', None) or exc})", []
    finally:
        conn.close()
    if resp.status in (401, 403):
        return (
            f"HTTP {resp.status} from {url}/v1/models: the server wants an API key "
            "(set the lane's api_key_env to the name of a variable holding it)",
            [],
        )
    if resp.status != 200:
        return f"HTTP {resp.status} from {url}/v1/models (expected 200)", []
    try:
        data = json.loads(body)
        ids = [str(d["id"]) for d in data.get("data", []) if isinstance(d, dict) and "id" in d]
    except (ValueError, AttributeError, KeyError, TypeError):
        return f"{url}/v1/models did not return an OpenAI model list", []
    return None, ids


EXTRA_FIELDS = ("ignore_eos", "cache_prompt", "timings_per_token", "stream_options.continuous_usage_stats")


def completion_body(
    model: str, prompt: Prompt, n_out: int, seed: int, extras: bool = True, cache: CacheUse | None = None
) -> dict[str, Any]:
    """The standard job for ``/v1/completions``: greedy, fixed length, streamed with usage.

    ``extras`` adds fields outside the OpenAI API (``EXTRA_FIELDS``): ``ignore_eos`` (llama-server,
    vLLM, SGLang), ``cache_prompt: false`` (llama-server: every prompt is processed anew),
    ``timings_per_token`` (llama-server: its running token count on every chunk) and
    ``continuous_usage_stats`` (vLLM, SGLang: the same, in ``usage``). vLLM and SGLang ignore the
    fields they do not know, llama-server too; a strict server refuses them (``_refused``).
    ``cache`` (a turn of a conversation held in a slot): ``cache_prompt: true`` and ``id_slot``
    instead, which llama-server honours; other servers reuse prefixes by themselves, or not, and
    the envelope's reuse check (``timings.cache_n``) says which it saw."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": n_out,
        "temperature": 0.0,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if extras:
        body.update(ignore_eos=True, cache_prompt=cache is not None, timings_per_token=True)
        body["stream_options"]["continuous_usage_stats"] = True
        if cache is not None:
            body["id_slot"] = cache.slot
    return body


async def _refused(session: aiohttp.ClientSession, endpoint: Endpoint, model: str) -> str | None:
    """Why the server refuses the extra fields (a one-token request with them answers 400 or
    422 and one without them 200), else None."""
    statuses: list[int] = []
    texts: list[str] = []
    for extras in (True, False):
        body = completion_body(model, "Hello", 1, 0, extras)
        try:
            async with session.post(
                f"{endpoint.base_url}/v1/completions", json=body, headers=endpoint.headers()
            ) as resp:
                texts.append((await resp.text())[:200])
                statuses.append(resp.status)
        except aiohttp.ClientError:
            return None  # the job's own requests will say what is wrong
        if statuses[0] not in (400, 422):
            return None
    if statuses[1] != 200:
        return None
    return f"HTTP {statuses[0]}: {' '.join(texts[0].split())}"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _logprob_entries(choice: dict[str, Any]) -> int | None:
    """Entries of a chunk's logprobs, one per token: ``tokens`` (the completions API's shape,
    vLLM) or ``content`` (llama-server); None when the chunk has none."""
    lp = choice.get("logprobs")
    if isinstance(lp, dict):
        for key in ("tokens", "content"):
            if isinstance(lp.get(key), list):
                return len(lp[key])
    return None


class OpenAIReader(StreamReader):
    """``/v1/completions`` chunks: ``choices[0].text``, ``usage`` and (llama-server) ``timings``.

    Tokens per chunk, in the order trusted: the server's running count on a chunk with text
    (``usage.completion_tokens`` under ``continuous_usage_stats``, vLLM and SGLang;
    ``timings.predicted_n`` under ``timings_per_token``, llama-server), the chunk's
    ``token_ids``, its logprob entries, else one per chunk with text. The final ``usage`` is the
    server's total (``predicted_n``): client decode counts it when the stream said less."""

    def feed(self, chunk: dict[str, Any]) -> tuple[int, str]:
        if "error" in chunk:
            err = chunk["error"]
            self.error = str(err.get("message", err) if isinstance(err, dict) else err)[:300]
        timings: dict[str, Any] = _mapping(chunk.get("timings"))
        usage: dict[str, Any] = _mapping(chunk.get("usage"))
        self.timings.update(timings)
        for key, name in (("prompt_tokens", "prompt_n"), ("completion_tokens", "predicted_n")):
            if key in usage and name not in timings:
                self.timings[name] = usage[key]
        choices = chunk.get("choices")
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            self.complete = self.complete or bool(usage)  # vLLM's last chunk: usage, no choices
            return 0, ""
        choice = choices[0]
        if choice.get("finish_reason"):
            self.complete = True  # some servers (llama-cpp-python) send no usage chunk
        text = str(choice.get("text") or "")
        ids = choice.get("token_ids")
        ids = [t for t in ids if isinstance(t, int)] if isinstance(ids, list) else []
        self.token_ids += ids
        if not (text or ids):
            return 0, ""
        return self._tokens(choice, usage, timings, text, ids), text

    def _tokens(
        self,
        choice: dict[str, Any],
        usage: dict[str, Any],
        timings: dict[str, Any],
        text: str,
        ids: list[int],
    ) -> int:
        so_far = _count(usage.get("completion_tokens"))
        if so_far is None:
            so_far = _count(timings.get("predicted_n"))
        if so_far is not None:
            return self.running(so_far)
        if ids:
            return self.counted(len(ids), TokenCount.IDS)
        entries = _logprob_entries(choice)
        if entries:
            return self.counted(entries, TokenCount.LOGPROBS)
        return self.one_per_chunk(text)

    def missing_end(self) -> str:
        return "stream ended before a chunk with a finish_reason or usage"


@register("openai")
class OpenAI(Engine):
    launches = False
    conversations = True  # llama-server behind the URL keeps them; its cache_n says whether it did
    lane_fields = frozenset({"url", "api_key_env"})

    def plan(self, lane: LaneSpec, ctx: PlanContext) -> LanePlan:
        label = f"lane {lane.name!r}"
        if not lane.url:
            raise BadInput(f"{label}: field 'url': engine 'openai' needs the server's base URL")
        for key in _LLAMA_ONLY:
            value = getattr(lane, key)
            if value not in (None, [], {}):
                raise BadInput(
                    f"{label}: field {key!r} configures a server lanebench starts; engine 'openai' "
                    "attaches to one that runs already (set it on that server)"
                )
        api_key(lane)  # a named variable that is not set is a planning error
        root = _api_root(lane.url)
        return LanePlan(
            lane,
            self,
            needed_ctx(ctx.job, lane.slots),
            build=root,
            build_info={"engine": "openai", "url": root},
        )

    def endpoint(self, plan: LanePlan, log_path: Path, load_timeout_s: float) -> Endpoint:
        root = _api_root(plan.lane.url or "")
        key = api_key(plan.lane)
        return Attached(root, f"lane {plan.lane.name!r}", lambda: probe_models(root, key)[0], key=key)

    async def prompt_ids(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan, text: str
    ) -> list[int] | None:
        model = await self._model(session, endpoint, plan)
        bodies = ({"content": text}, {"model": model, "prompt": text, "add_special_tokens": False})
        for body in bodies:  # llama.cpp's /tokenize, then vLLM's
            try:
                async with session.post(
                    f"{endpoint.base_url}/tokenize", json=body, headers=endpoint.headers()
                ) as resp:
                    if resp.status != 200:
                        continue
                    out = await resp.json()
                toks = out.get("tokens") if isinstance(out, dict) else None
                if isinstance(toks, list) and toks and all(isinstance(t, int) for t in toks):
                    return toks
            except (aiohttp.ClientError, ValueError):
                continue
        return None

    async def _model(self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan) -> str:
        if plan.lane.served_model:
            return plan.lane.served_model
        if "model" not in plan.build_info:
            async with session.get(f"{endpoint.base_url}/v1/models", headers=endpoint.headers()) as resp:
                resp.raise_for_status()
                data = await resp.json()
            ids = [d.get("id") for d in data.get("data", []) if isinstance(d, dict)]
            plan.build_info["model"] = str(ids[0]) if ids else ""
        return str(plan.build_info["model"])

    async def prepare(self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan) -> None:
        """The served model's name, then whether the server takes lanebench's extra fields."""
        model = await self._model(session, endpoint, plan)
        if "refused" not in plan.build_info:
            plan.build_info["refused"] = await _refused(session, endpoint, model)

    def request(self, plan: LanePlan, prompt: Prompt, turn: Turn) -> Request:
        model = plan.lane.served_model or plan.build_info.get("model", "")
        why = plan.build_info.get("refused")
        notes = [
            f"the server refused the extra fields {', '.join(EXTRA_FIELDS)} ({why}): requests were sent "
            "without them (no ignore_eos, no cache_prompt: false, a token count from usage alone)"
        ]
        return Request(
            "/v1/completions",
            completion_body(model, prompt, turn.n_out, turn.seed, not why, turn.cache),
            turn.n_in,
            turn.n_out,
            notes if why else [],
        )

    def reader(self) -> StreamReader:
        return OpenAIReader()
