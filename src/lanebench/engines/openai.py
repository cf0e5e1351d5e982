"""Any OpenAI-compatible server already running at a URL: no launch, no load time.

The job goes to streaming ``/v1/completions`` with ``stream_options.include_usage``. The
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

from lanebench.engines.base import (
    Attached,
    Endpoint,
    Engine,
    LanePlan,
    PlanContext,
    Prompt,
    Request,
    StreamReader,
    api_key,
    check_fields,
    needed_ctx,
)
from lanebench.engines.registry import register
from lanebench.errors import BadInput
from lanebench.lanes import LaneSpec

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


class OpenAIReader(StreamReader):
    """``/v1/completions`` chunks: ``choices[0].text``, ``usage`` and (llama-server) ``timings``."""

    def feed(self, chunk: dict[str, Any]) -> tuple[int, str]:
        if "error" in chunk:
            err = chunk["error"]
            self.error = str(err.get("message", err) if isinstance(err, dict) else err)[:300]
        if isinstance(chunk.get("timings"), dict):
            self.timings = {**self.timings, **chunk["timings"]}
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            if "prompt_tokens" in usage:
                self.timings.setdefault("prompt_n", usage["prompt_tokens"])
            if "completion_tokens" in usage:
                self.timings.setdefault("predicted_n", usage["completion_tokens"])
            self.complete = True
        choices = chunk.get("choices")
        text = ""
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            text = str(choices[0].get("text") or "")
            if choices[0].get("finish_reason"):
                self.complete = True  # some servers (llama-cpp-python) send no usage chunk
        return (1 if text else 0), text

    def missing_end(self) -> str:
        return "stream ended before a chunk with a finish_reason or usage"


@register("openai")
class OpenAI(Engine):
    launches = False
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
        check_fields(self, lane, {})
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
        await self._model(session, endpoint, plan)

    def request(
        self, plan: LanePlan, prompt: Prompt, n_in: int, n_out: int, seed: int, speculative: dict[str, Any]
    ) -> Request:
        body: dict[str, Any] = {
            "model": plan.lane.served_model or plan.build_info.get("model", ""),
            "prompt": prompt,
            "max_tokens": n_out,
            "temperature": 0.0,
            "seed": seed,
            "stream": True,
            "stream_options": {"include_usage": True},
            # honoured by llama-server, vLLM and SGLang; others ignore it, and the flag on a
            # short completion says so
            "ignore_eos": True,
        }
        return Request("/v1/completions", body, n_in, n_out)

    def reader(self) -> StreamReader:
        return OpenAIReader()
