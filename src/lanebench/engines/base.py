"""What every engine is: a class that knows how to serve a lane and how to read what it sends back.

An engine is one module holding one ``Engine`` subclass decorated with ``@register``; the
registry (``engines.registry``) finds it by the lane's ``engine`` field. Everything the
pipeline needs from an engine goes through this interface:

- **planning** (``plan``): resolve the lane into a ``LanePlan`` before anything starts, refusing
  with a one-line error naming the lane and field when the engine cannot serve it;
- **serving** (``endpoint``): a context manager that starts the server (a ``ServerProcess``) or
  attaches to one already running, with its readiness probe;
- **the standard job** (``prompt_ids``, ``request``, ``reader``): exact-length prompts (token
  ids where the engine takes them, else text it tokenised itself), the request body, and a
  ``StreamReader`` that turns each streamed chunk into tokens and the engine's own figures;
- **counters** (``counters``): cumulative speculative counters, before and after the job;
- **optional capabilities** (``engines.hooks``): kernel view, quality tool, placement, memory,
  fingerprint, attribution suspects, doctor; each defaults to "not available for engine X".

Figures an engine reports itself are normalised into llama.cpp's ``timings`` names
(``prompt_n``, ``prompt_per_second``, ``predicted_n``, ``predicted_per_second``, ``draft_n``,
``draft_n_accepted``) so metrics and reports stay engine-agnostic; counters use the
``spec_decode_*`` names llama.cpp and vLLM share.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import aiohttp

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines.hooks import EngineHooks, MemoryFit, Unavailable
from lanebench.errors import BadInput, LaneFailed
from lanebench.records.samples import TokenCount
from lanebench.server.process import ServerProcess

CTX_PAD = 64  # tokens of slack per slot beyond n_in + n_out


def needed_ctx(job: JobSpec, slots: int) -> int:
    """Context for ``slots`` slots that each hold a whole job (with the envelope, its deepest
    conversation too), rounded up to 256."""
    per_slot = job.context_per_slot + CTX_PAD
    return -(-(per_slot * slots) // 256) * 256


@dataclass(slots=True)
class PlanContext:
    """What planning needs besides the lane: the job and the run's defaults."""

    job: JobSpec
    server_bin: Path | None = None
    check_drafts: bool = True


class Endpoint(Protocol):
    """A server a lane's requests go to: started by lanebench, or attached to."""

    @property
    def base_url(self) -> str: ...
    @property
    def load_s(self) -> float | None: ...
    @property
    def argv(self) -> list[str]: ...
    @property
    def log_path(self) -> Path | None: ...
    def log_tail(self, lines: int = 20) -> str: ...
    def check_alive(self, grace_s: float = 0.0) -> None: ...
    def headers(self) -> dict[str, str]: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass(slots=True)
class LanePlan:
    """Everything needed to serve one lane, resolved before anything starts.

    ``server_bin``/``dialect``/``model`` (``draft_model``) are set by engines that launch a binary; ``build``
    names what serves the lane (the binary, or the URL) and ``build_info`` describes it; ``fit``
    is the lane's memory estimate, asked of the engine once while planning (None where planning
    did not take it: an engine with no estimate of its own, a plan built by hand; the engine is
    then asked when it is needed)."""

    lane: LaneSpec
    engine: Engine
    ctx: int
    build: str
    build_info: dict[str, Any] = field(default_factory=dict)
    server_bin: Path | None = None
    dialect: Any = None
    model: Path | None = None
    draft_model: Path | None = None  # the draft's GGUF (the model itself for a self-draft), resolved with it
    argv_preview: list[str] = field(default_factory=list)
    fit_notes: list[str] = field(default_factory=list)  # the fit check's estimate per place, what it assumed
    fit: MemoryFit | Unavailable | None = None  # the engine's ``memory_fit``, taken when it planned the lane

    def argv(self, port: int) -> list[str]:
        return self.engine.argv(self, port)


_WEAKEST = list(TokenCount)  # best first: a stream is as well counted as its worst chunk


class StreamReader:
    """Reads one streamed reply chunk by chunk; subclasses know their engine's chunk shape.

    ``feed`` returns how many generated tokens a chunk carries and keeps the engine's figures in
    ``timings``; ``complete`` becomes True once the reply's last chunk arrived. Readers of
    engines that stream token ids append them to ``token_ids`` (greedy checks compare them).

    A chunk is not a token: a server may send several tokens in one (speculative decoding, a
    proxy, a token held back until its UTF-8 character is complete), so readers count with
    ``running`` (the server's running count), ``counted`` (ids or logprob entries) or, when the
    stream says nothing, ``one_per_chunk``; ``counted_by`` keeps the weakest way used."""

    complete: bool = False

    def __init__(self) -> None:
        self.timings: dict[str, Any] = {}
        self.error: str | None = None
        self.complete = False
        self.token_ids: list[int] = []
        self.counted_by: TokenCount | None = None
        self.seen = 0  # generated tokens counted so far

    def feed(self, chunk: dict[str, Any]) -> tuple[int, str]:  # pragma: no cover - interface
        """(tokens, text) the chunk carries."""
        raise NotImplementedError

    def _by(self, how: TokenCount) -> None:
        if self.counted_by is None or _WEAKEST.index(how) > _WEAKEST.index(self.counted_by):
            self.counted_by = how

    def running(self, total: int) -> int:
        """Tokens a chunk carries when the server says how many it has generated so far."""
        self._by(TokenCount.RUNNING)
        n = max(0, total - self.seen)
        self.seen = max(self.seen, total)
        return n

    def counted(self, n: int, how: TokenCount) -> int:
        """Tokens a chunk carries when it lists them (ids, logprob entries)."""
        self._by(how)
        self.seen += n
        return n

    def one_per_chunk(self, text: str) -> int:
        """Nothing in the chunk says how many tokens it carries: one, if it carries text."""
        return self.counted(1, TokenCount.CHUNKS) if text else 0

    def missing_end(self) -> str:
        return "stream ended before the reply's final chunk"


@dataclass(frozen=True, slots=True)
class CacheUse:
    """A request that continues the conversation a server holds in slot ``slot``: sent with the
    prompt cache kept (llama-server: ``cache_prompt: true``, ``id_slot``), so the prefix the slot
    holds is reused, not prefilled again (the envelope's depth, ``measure.envelope``)."""

    slot: int


@dataclass(frozen=True, slots=True)
class Turn:
    """What one request asks of the engine, the prompt apart: ``n_in`` prompt tokens (the new
    ones, at a depth), ``n_out`` generated, the sampling seed, the lane's speculative request
    fields, and ``cache`` when it continues a conversation a slot holds (``CacheUse``)."""

    n_in: int
    n_out: int
    seed: int = 0
    speculative: dict[str, Any] = field(default_factory=dict)
    cache: CacheUse | None = None


@dataclass(slots=True)
class Request:
    """One request of the standard job: where it goes and what it says; ``notes``: what a reader
    of the lane's figures must know about it (e.g. fields the server refused, so it goes without
    them; learnt in ``Engine.prepare``)."""

    path: str
    body: dict[str, Any]
    n_in: int
    n_out: int
    notes: list[str] = field(default_factory=list)


Prompt = list[int] | str


class Engine(EngineHooks, ABC):
    """A serving engine. Subclasses set ``name`` and register with ``@register``; the optional
    capabilities they have override ``EngineHooks``' defaults."""

    name: ClassVar[str]
    launches: ClassVar[bool] = True  # False: attaches to a server that already runs
    ready_path: ClassVar[str] = "/health"  # answers 200 once a launched server can serve
    per_request_speculative: ClassVar[bool] = False  # lanes may share a server (sweep)
    conversations: ClassVar[bool] = False  # can continue a conversation held in a slot (CacheUse)
    # engine-only lane fields it takes (placement, url, api_key_env); planning refuses the others
    lane_fields: ClassVar[frozenset[str]] = frozenset()

    # --- planning -------------------------------------------------------------------------
    @abstractmethod
    def plan(self, lane: LaneSpec, ctx: PlanContext) -> LanePlan:
        """Resolve the lane; raise BadInput/NotFound naming the lane and field."""

    def argv(self, plan: LanePlan, port: int) -> list[str]:
        return []

    # --- serving --------------------------------------------------------------------------
    def endpoint(self, plan: LanePlan, log_path: Path, load_timeout_s: float) -> Endpoint:
        """A context manager that serves the plan: by default the plan's argv started as a
        ``ServerProcess`` (``serve``); engines that attach to a running server override this."""
        return self.serve(plan, plan.argv, log_path, load_timeout_s)

    def serve(
        self, plan: LanePlan, argv_for_port: Callable[[int], list[str]], log_path: Path, load_timeout_s: float
    ) -> ServerProcess:
        """``argv_for_port(port)`` started as the lane's ``ServerProcess`` (own process group, the
        lane's env), ready at ``ready_path``."""
        return ServerProcess(
            argv_for_port,
            log_path,
            label=f"lane {plan.lane.name!r}",
            env=plan.lane.env,
            load_timeout_s=load_timeout_s,
            ready_path=self.ready_path,
        )

    # --- the standard job -----------------------------------------------------------------
    async def prompt_ids(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan, text: str
    ) -> list[int] | None:
        """The corpus as the engine's token ids; None when the engine cannot tokenise for us."""
        return None

    async def prepare(self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan) -> None:
        """Learn what requests need once the server answers (e.g. the served model's name)."""
        return None

    @abstractmethod
    def request(self, plan: LanePlan, prompt: Prompt, turn: Turn) -> Request:
        """The streaming request for one job (greedy, fixed output length); ``cache``: continue
        the conversation held in a slot instead of a fresh prompt (engines whose
        ``conversations`` is False are never asked)."""

    @abstractmethod
    def reader(self) -> StreamReader:
        """A fresh reader for one streamed reply."""

    async def counters(self, session: aiohttp.ClientSession, endpoint: Endpoint) -> dict[str, float]:
        """Cumulative counters (``spec_decode_*`` names); empty when the engine has none."""
        return {}

    async def supports_per_request(self, session: aiohttp.ClientSession, endpoint: Endpoint) -> bool:
        return False


def api_key(lane: LaneSpec) -> str | None:
    """The lane's API key, read from the environment variable it names (never stored)."""
    if not lane.api_key_env:
        return None
    value = os.environ.get(lane.api_key_env)
    if not value:
        raise BadInput(
            f"lane {lane.name!r}: field 'api_key_env' names {lane.api_key_env!r}, which is not set "
            "in the environment"
        )
    return value


@dataclass(slots=True)
class Attached:
    """An endpoint lanebench did not start: nothing to load or stop; alive while it answers."""

    base_url: str
    label: str
    probe: Callable[[], str | None]  # None when the server answers, else why not
    key: str | None = None
    load_s: float | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def log_path(self) -> Path | None:
        return None

    def log_tail(self, lines: int = 20) -> str:
        return ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def check_alive(self, grace_s: float = 0.0) -> None:
        why = self.probe()
        if why is not None:
            raise LaneFailed(f"{self.label}: {why}")

    def __enter__(self) -> Attached:
        self.check_alive()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None
