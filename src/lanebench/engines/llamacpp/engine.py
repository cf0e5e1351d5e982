"""llama.cpp's ``llama-server``, started by lanebench: the engine every other one is measured against.

Its flags come from the build's own ``--help`` (``llamacpp.dialect``), its argv from a pure
function (``llamacpp.argv``); it takes prompts as token ids, streams ``/completion`` with a
final chunk carrying ``timings``, and keeps speculative counters on ``/metrics``. It has every
optional capability (``engines.hooks``), each served by a support module beside it: the kernel
view (``kernel``: llama-bench), the quality tool (llama-perplexity beside the build), placement,
memory (``memory``), fingerprints (``fingerprint``), attribution suspects (``suspects``) and
``doctor``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp

from lanebench.analysis import metrics as m
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.models import default_model_path
from lanebench.config.placement import PLACED
from lanebench.engines.base import (
    CacheUse,
    Endpoint,
    Engine,
    LanePlan,
    PlanContext,
    Prompt,
    Request,
    StreamReader,
    Turn,
    needed_ctx,
)
from lanebench.engines.hooks import (
    KernelView,
    MemoryFit,
    MemorySources,
    QualityTool,
    Suspects,
    Unavailable,
    process_leaders,
)
from lanebench.engines.llamacpp import doctor, fingerprint, kernel, memory, placement, suspects
from lanebench.engines.llamacpp.argv import LaneRefused, at_port, build_argv
from lanebench.engines.llamacpp.devices import check_device_names, list_devices
from lanebench.engines.llamacpp.dialect import Dialect, probe
from lanebench.engines.llamacpp.discovery import find_server_bin
from lanebench.engines.llamacpp.rpc import find_rpc_server, rpc_support_problem, why_unreachable
from lanebench.engines.llamacpp.rpc_lane import RpcLaneEndpoint
from lanebench.engines.registry import register
from lanebench.errors import BadInput
from lanebench.gguf.check import check_draft
from lanebench.gguf.magic import check_gguf_file
from lanebench.records.placement import PlacementRecord
from lanebench.records.samples import TokenCount


def completion_body(
    prompt: list[int],
    n_out: int,
    seed: int,
    speculative: dict[str, Any] | None = None,
    cache: CacheUse | None = None,
) -> dict[str, Any]:
    """The request of the standard job: exact prompt tokens, fixed output length, greedy; with
    ``cache``, a turn of the conversation held in that slot (prompt cache kept, slot pinned)."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "n_predict": n_out,
        "ignore_eos": True,
        "cache_prompt": cache is not None,
        "temperature": 0.0,
        "seed": seed,
        "stream": True,
        "return_tokens": True,
    }
    if cache is not None:
        body["id_slot"] = cache.slot
    for key, value in (speculative or {}).items():
        body[f"speculative.{key}"] = value  # llama-server reads flat dotted keys
    return body


def chunk_tokens(chunk: dict[str, Any]) -> int:
    """How many generated tokens a stream chunk carries (a draft round may carry several)."""
    toks = chunk.get("tokens")
    if isinstance(toks, list):
        return len(toks)
    return 1 if chunk.get("content") else 0


class LlamaReader(StreamReader):
    """``/completion`` chunks: text, ``tokens``, ``tokens_predicted``; ``timings`` on the final one.

    Tokens are counted from ``tokens_predicted``, the server's running count: b11434 holds back
    a token whose text ends inside a UTF-8 character and sends no chunk for it, so its id is
    in no chunk's ``tokens`` and the next chunk carries two or more tokens
    (``tools/server/server-context.cpp`` ``process_token``; e.g. 4 per Egyptian hieroglyph on
    Gemma 3). The ``tokens`` lists are counted only where a build sends no running count."""

    def feed(self, chunk: dict[str, Any]) -> tuple[int, str]:
        if "error" in chunk:
            self.error = str(chunk["error"])[:300]
        if chunk.get("stop") and isinstance(chunk.get("timings"), dict):
            self.timings = chunk["timings"]
            self.complete = True
        text = str(chunk.get("content") or "")
        toks = chunk.get("tokens")
        ids = [t for t in toks if isinstance(t, int)] if isinstance(toks, list) else []
        self.token_ids += ids
        if not (text or ids):
            return 0, ""  # the final chunk, or one that carries nothing generated
        so_far = chunk.get("tokens_predicted")
        if isinstance(so_far, int) and not isinstance(so_far, bool):
            return self.running(so_far), text
        if isinstance(toks, list):
            return self.counted(len(ids), TokenCount.IDS), text
        return self.one_per_chunk(text), text

    def missing_end(self) -> str:
        return "stream ended without a final chunk carrying timings"


def _draft_problems(lane: LaneSpec, model: Path, draft: Path, dialect: Dialect) -> list[str]:
    assert lane.draft is not None
    problems = check_draft(model, draft, lane.draft.kind, dialect)
    return [f"lane {lane.name!r}: draft check: {p}" for p in problems]


def _placement_problems(lane: LaneSpec, binary: Path, dialect: Dialect) -> None:
    """Refuse, before anything starts, what this build or this machine cannot place."""
    label = f"lane {lane.name!r}"
    if lane.rpc or lane.rpc_local:
        field = "rpc" if lane.rpc else "rpc_local"
        if not dialect.has("--rpc"):
            raise LaneRefused(f"{label}: field {field!r}: this llama-server build has no --rpc")
        if problem := rpc_support_problem(binary):
            raise LaneRefused(
                f"{label}: field {field!r}: {problem}; build one with: lanebench install-server "
                "(or scripts/setup.sh)"
            )
    if lane.rpc_local and find_rpc_server(binary) is None:
        raise LaneRefused(
            f"{label}: field 'rpc_local': no ggml-rpc-server beside {binary}; build one with: "
            "lanebench install-server (or scripts/setup.sh)"
        )
    for endpoint in lane.rpc:
        if why := why_unreachable(endpoint):
            raise BadInput(f"{label}: field 'rpc': RPC server {endpoint}: {why}")
    named = [("devices", lane.devices)]
    if lane.draft is not None:
        named.append(("draft.devices", lane.draft.devices))
    wanted = [(f, names) for f, names in named if names]
    if wanted or lane.main_gpu is not None or lane.tensor_split is not None:
        devices = list_devices(binary)
        if devices is None:
            return  # a build without --list-devices: its own error will say
        for field, names in wanted:
            assert names is not None
            check_device_names(label, field, names, devices, lane.rpc_count)
        if not lane.rpc_count:
            if lane.main_gpu is not None and lane.main_gpu >= max(len(devices), 1):
                raise BadInput(
                    f"{label}: field 'main_gpu' = {lane.main_gpu}: this build lists "
                    f"{len(devices)} device(s) here (--list-devices)"
                )
            if lane.tensor_split is not None and len(lane.tensor_split) > max(len(devices), 1):
                raise BadInput(
                    f"{label}: field 'tensor_split' has {len(lane.tensor_split)} shares; this build "
                    f"lists {len(devices)} device(s) here (--list-devices)"
                )


@register("llama.cpp", "llamacpp", "llama-server")
class LlamaCpp(Engine):
    per_request_speculative = True
    conversations = True  # slots pinned by id_slot, prefixes kept by cache_prompt
    lane_fields = frozenset(PLACED)  # split_mode, tensor_split, main_gpu, devices, rpc, rpc_local

    def plan(self, lane: LaneSpec, ctx: PlanContext) -> LanePlan:
        label = f"lane {lane.name!r}"
        if lane.server_bin is not None:
            binary = find_server_bin(lane.server_bin, f"{label}: field 'server_bin'")
        else:
            binary = find_server_bin(ctx.server_bin)
        dialect = probe(binary)
        model = lane.model or default_model_path()
        check_gguf_file(model, f"{label}: field 'model'")
        if lane.draft is not None and lane.draft.path is not None:
            check_gguf_file(lane.draft.path, f"{label}: field 'draft.path'")
        n_ctx = needed_ctx(ctx.job, lane.slots)
        if lane.ctx is not None:
            per_slot, job = lane.ctx // lane.slots, ctx.job
            if per_slot < job.context_per_slot:
                what = (
                    f"depth {max(job.depth_levels):,} + 4 pad + n_in {job.n_in:,} + n_out {job.n_out:,}"
                    if job.envelope
                    else "n_in + n_out"
                )
                raise BadInput(
                    f"{label}: field 'ctx' = {lane.ctx} gives {per_slot:,} tokens per slot "
                    f"({lane.slots} slots), less than the job's {job.context_per_slot:,} ({what}); "
                    f"use at least {n_ctx} or leave it empty"
                )
            n_ctx = lane.ctx
        plan = LanePlan(
            lane,
            self,
            n_ctx,
            build=str(binary),
            build_info=dialect.to_dict(),
            server_bin=binary,
            dialect=dialect,
            model=model,
            draft_model=lane.draft_path(model) if lane.draft is not None else None,
        )
        _placement_problems(lane, binary, dialect)
        plan.argv_preview = self.argv(plan, 0)  # surfaces LaneRefused before anything starts
        if lane.draft is not None and ctx.check_drafts:
            assert plan.draft_model is not None
            problems = _draft_problems(lane, model, plan.draft_model, dialect)
            if problems:
                raise BadInput("\n".join(problems))
        plan.fit = memory.memory_fit(plan)  # the fit check and the lane's memory read this one
        return plan

    def argv(self, plan: LanePlan, port: int, local_rpc_ports: list[int] | None = None) -> list[str]:
        assert plan.server_bin is not None and plan.model is not None
        lane = plan.lane.model_copy(update={"ctx": plan.ctx})
        return build_argv(lane, plan.dialect, plan.server_bin, plan.model, port, local_rpc_ports)

    def endpoint(self, plan: LanePlan, log_path: Path, load_timeout_s: float) -> Endpoint:
        """llama-server alone, serving the argv its plan built (at the port found free), or with
        the lane's RPC servers (started first, probed, stopped after; the argv then names their
        ports too)."""
        lane = plan.lane
        if not (lane.rpc or lane.rpc_local):
            argv = plan.argv_preview or self.argv(plan, 0)
            return self.serve(plan, lambda port: at_port(argv, port), log_path, load_timeout_s)
        assert plan.server_bin is not None
        return RpcLaneEndpoint(
            lane,
            log_path,
            lambda port, local: self.argv(plan, port, local),
            rpc_bin=find_rpc_server(plan.server_bin),
            load_timeout_s=load_timeout_s,
        )

    async def prompt_ids(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan, text: str
    ) -> list[int] | None:
        async with session.post(f"{endpoint.base_url}/tokenize", json={"content": text}) as resp:
            resp.raise_for_status()
            out = await resp.json()
        return [int(t) for t in out["tokens"]]

    def request(self, plan: LanePlan, prompt: Prompt, turn: Turn) -> Request:
        assert isinstance(prompt, list), "llama-server takes token ids"
        return Request(
            "/completion",
            completion_body(prompt, turn.n_out, turn.seed, turn.speculative, turn.cache),
            turn.n_in,
            turn.n_out,
        )

    def reader(self) -> StreamReader:
        return LlamaReader()

    async def counters(self, session: aiohttp.ClientSession, endpoint: Endpoint) -> dict[str, float]:
        try:
            async with session.get(f"{endpoint.base_url}/metrics") as resp:
                resp.raise_for_status()
                return m.parse_prometheus(await resp.text())
        except aiohttp.ClientError:
            return {}

    async def supports_per_request(self, session: aiohttp.ClientSession, endpoint: Endpoint) -> bool:
        """True when the server echoes a per-request ``speculative.n_max`` (so it honours it)."""
        for n_max in (1, 2):
            body = {"prompt": [1, 2, 3], "n_predict": 1, "cache_prompt": False, "speculative.n_max": n_max}
            try:
                async with session.post(f"{endpoint.base_url}/completion", json=body) as resp:
                    if resp.status != 200:
                        return False
                    data = await resp.json()
            except (aiohttp.ClientError, ValueError):
                return False
            if (data.get("generation_settings") or {}).get("speculative.n_max") != n_max:
                return False
        return True

    # --- optional capabilities (engines.hooks), each from its support module ------------------
    def kernel_view(
        self, plan: LanePlan, job: JobSpec, reps: int, depth: int = 0
    ) -> KernelView | Unavailable:
        return kernel.kernel_view(plan, job, reps, depth)

    def quality_tool(self, plan: LanePlan) -> QualityTool | Unavailable:
        assert plan.server_bin is not None and plan.model is not None
        return QualityTool(plan.server_bin, plan.model)

    def placement(self, plan: LanePlan, endpoint: Endpoint) -> PlacementRecord | None:
        return placement.placement_record(plan, endpoint)

    def memory_fit(self, plan: LanePlan) -> MemoryFit | Unavailable:
        return memory.memory_fit(plan)

    def memory_sources(self, plan: LanePlan, endpoint: Endpoint) -> MemorySources | Unavailable:
        """llama-server and each local RPC server, and the server log (its buffer sizes)."""
        log = endpoint.log_path
        return MemorySources(
            process_leaders(endpoint), Path(log) if log else None, {**os.environ, **plan.lane.env}
        )

    def fingerprint(self, build: str, build_info: dict[str, Any]) -> dict[str, Any]:
        """The binary ``build`` names; ``build_info`` is its flag dialect (``Dialect.to_dict``)."""
        return fingerprint.build_fingerprint(Path(build), build_info or None)

    def backends(self, log_path: Path | None) -> list[str]:
        return fingerprint.log_backends(log_path)

    def attribution_suspects(self, plan: LanePlan) -> Suspects | Unavailable:
        return suspects.suspects_for(plan)

    def doctor(self, smoke: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return doctor.diagnose(smoke)
