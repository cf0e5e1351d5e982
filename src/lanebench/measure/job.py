"""Measure one lane on a running server: warm-up, repetitions, the N-slot aggregate.

Every request becomes a record handed to ``emit`` as soon as it completes, so nothing measured
is lost if a later request or the engine fails.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from lanebench.analysis import metrics as m
from lanebench.busy.meter import LoadMeter
from lanebench.busy.verdict import busy_record, needs_more
from lanebench.config.job import JobSpec
from lanebench.engines.base import Endpoint, LanePlan, Prompt, Request, Turn
from lanebench.errors import LaneFailed
from lanebench.measure.client import stream_request
from lanebench.measure.workloads import PromptSource, TextPromptSource, corpus_text
from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.request import SentRequest
from lanebench.records.samples import AggregateRecord, RequestRecord, SampleKind, TokenCount

Emit = Callable[[RequestRecord | AggregateRecord], None]


@dataclass(slots=True)
class RunState:
    """What one run learns once and re-uses: corpus token ids per engine and model, and whether
    a build honours per-request speculative fields. Lives as long as one ``run_lanes`` call."""

    tokens: dict[str, list[int] | None] = field(default_factory=dict)
    per_request: dict[str, bool] = field(default_factory=dict)


def token_key(plan: LanePlan) -> str:
    return f"{plan.engine.name}\0{plan.build}\0{plan.model or plan.lane.served_model or ''}"


class LaneJob:
    """The standard job against one endpoint, recording into ``result``."""

    def __init__(
        self,
        plan: LanePlan,
        endpoint: Endpoint,
        result: LaneResult,
        job: JobSpec,
        emit: Emit,
        *,
        state: RunState,
        request_timeout_s: float = 3600.0,
        speculative: dict[str, Any] | None = None,
        meter: LoadMeter | None = None,
    ) -> None:
        """``meter``: measures what else ran during each request and batch (None: not measured)."""
        self.plan = plan
        self.engine = plan.engine
        self.endpoint = endpoint
        self.result = result
        self.job = job
        self.emit = emit
        self.state = state
        self.request_timeout_s = request_timeout_s
        self.speculative = speculative or {}
        self.meter = meter
        self._next_prompt = 0
        self._prompts: PromptSource | TextPromptSource | None = None

    def _prompt(self) -> Prompt:
        assert self._prompts is not None
        prompt = self._prompts.prompt(self._next_prompt)
        self._next_prompt += 1
        return prompt

    def _record(self, rec: RequestRecord | AggregateRecord) -> None:
        if isinstance(rec, RequestRecord):
            self.result.samples.append(rec)
        else:
            self.result.aggregates.append(rec)
        self.emit(rec)

    async def _one(
        self, session: aiohttp.ClientSession, kind: SampleKind, rep: int, idx: int = 0
    ) -> RequestRecord:
        prompt = self._prompt()
        turn = Turn(self.job.n_in, self.job.n_out, self.job.seed, self.speculative)
        req = self.engine.request(self.plan, prompt, turn)
        if self.result.request is None:
            self.result.request = sent(req, prompt)
        return await self._send(session, req, kind, rep, idx)

    async def _send(
        self, session: aiohttp.ClientSession, req: Request, kind: SampleKind, rep: int, idx: int
    ) -> RequestRecord:
        """Stream one request; a failure that found the server dead is recorded, then raised."""
        rec = await stream_request(
            session,
            self.endpoint.base_url,
            req,
            self.engine.reader(),
            kind=kind,
            rep=rep,
            stream_index=idx,
            timeout_s=self.request_timeout_s,
            headers=self.endpoint.headers() or None,
        )
        if not rec.ok:
            try:
                self.endpoint.check_alive(grace_s=2.0)
            except LaneFailed:
                self._record(rec)  # the request that found the server dead is data too
                raise
        return rec

    async def _metered(self, session: aiohttp.ClientSession, kind: SampleKind, rep: int) -> RequestRecord:
        """One request with the machine's load during it (``rec.load``)."""
        start = self.meter.start() if self.meter else None
        rec = await self._one(session, kind, rep)
        rec.load = self.meter.stop(start) if self.meter else None
        return rec

    async def _prepare(self, session: aiohttp.ClientSession) -> None:
        """The served model's name, then the corpus as token ids (or text, if the engine cannot)."""
        try:
            await self.engine.prepare(session, self.endpoint, self.plan)
            key = token_key(self.plan)
            if key not in self.state.tokens:
                text = corpus_text()
                self.state.tokens[key] = await self.engine.prompt_ids(session, self.endpoint, self.plan, text)
            tokens = self.state.tokens[key]
        except (aiohttp.ClientError, KeyError, ValueError, TypeError) as exc:
            self.endpoint.check_alive(grace_s=2.0)
            raise LaneFailed(
                f"lane {self.plan.lane.name!r}: cannot tokenise the corpus: {exc}", self.endpoint.log_tail()
            ) from None
        if tokens is None:
            self._prompts = TextPromptSource(corpus_text(), self.job.n_in)
        else:
            self._prompts = PromptSource(tokens, self.job.n_in)

    def _more_reps(self, done: int) -> bool:
        """Fixed reps, then re-measurements of busy ones (bounded), or with a CI target: at least
        ``reps``, then until the CI of the quiet ones fits or max_reps."""
        job = self.job
        if done < job.reps:
            return True
        singles = [r for r in self.result.samples if r.kind == "single"]
        if needs_more(singles, job.reps, job.remeasure_budget):
            return True
        if job.target_ci is None or done >= job.max_reps:
            return False
        decode = [d for r in self.result.measured_singles() if (d := m.engine_decode_tps(r))]
        return not m.ci_within(decode, job.target_ci)

    def _more_batches(self, done: int) -> bool:
        """``reps`` N-slot batches, then re-measurements of busy ones (bounded)."""
        job = self.job
        if job.aggregate <= 0:
            return False
        return done < job.reps or needs_more(self.result.aggregates, job.reps, job.remeasure_budget)

    async def measure(self) -> None:
        """Run the job, then summarise what it measured into the lane's result (figures, flags,
        busy marks), also when it stopped part way (a failure is raised after)."""
        try:
            await self.run()
        finally:
            summarize(self.result, self.job, self.endpoint.log_tail(200))

    async def run(self) -> None:
        # llama-server closes a connection after a streamed reply; never reuse one
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            await self._prepare(session)
            for w in range(self.job.warmup):
                self._record(await self._metered(session, "warmup", w))
            before = await self.engine.counters(session, self.endpoint)
            r = 0
            while self._more_reps(r):
                self._record(await self._metered(session, "single", r))
                r += 1
            delta = m.counter_delta(before, await self.engine.counters(session, self.endpoint))
            self.result.metrics_delta = delta
            b = 0
            while self._more_batches(b):
                await self._batch(session, b)
                b += 1

    async def _batch(self, session: aiohttp.ClientSession, rep: int) -> None:
        n = self.job.aggregate
        start = self.meter.start() if self.meter else None
        t0 = time.perf_counter()
        recs = await asyncio.gather(*(self._one(session, "aggregate", rep, i) for i in range(n)))
        wall = time.perf_counter() - t0
        load = self.meter.stop(start) if self.meter else None
        for rec in recs:
            self._record(rec)
        ok = all(r.ok for r in recs)
        tokens = sum(int(r.timings.get("predicted_n", r.stream_tokens)) for r in recs if r.ok)
        errors = "; ".join(r.error for r in recs if r.error)
        self._record(
            AggregateRecord(
                rep=rep, streams=n, wall_s=wall, tokens=tokens, ok=ok, error=errors or None, load=load
            )
        )


def sent(req: Request, prompt: Prompt) -> SentRequest:
    """What a lane's requests say, the prompt left out (``LaneResult.request``)."""
    body = {k: (f"<prompt: {req.n_in} tokens>" if v is prompt else v) for k, v in req.body.items()}
    return SentRequest(req.path, body, list(req.notes))


def _reason_in_log(log_tail: str) -> str:
    for line in reversed(log_tail.splitlines()):
        low = line.lower()
        if "draft" in low and re.search(r"compat|fail|error|mismatch|differ|refus", low):
            return line.strip()[:200]
    return ""


def summarize(result: LaneResult, job: JobSpec, log_tail: str = "") -> None:
    """Fill ``summary``, ``per_position``, ``flags`` and ``busy`` of a measured lane (pure). The
    figures come from the quiet repetitions, or from the busy ones when no quiet one was found
    (``LaneResult.measured_singles``); ``busy`` then names them."""
    measured = "cell" if job.envelope else "single"  # the envelope's turns are its measured requests
    _flag(result, job, [r for r in result.samples if r.kind == measured and r.ok], log_tail)
    singles, batches = result.measured_singles(), result.measured_batches()
    s: dict[Fig, Any] = {
        Fig.PREFILL: m.stat(m.engine_prefill_tps(r) for r in singles),
        Fig.DECODE: m.stat(m.engine_decode_tps(r) for r in singles),
        Fig.PREFILL_CLIENT: m.stat(m.client_prefill_tps(r) for r in singles),
        Fig.DECODE_CLIENT: m.stat(m.client_decode_tps(r) for r in singles),
        Fig.WALL: m.stat(r.wall_s for r in singles),
        Fig.NORMALIZED_WALL: m.stat(
            m.normalized_wall_s(job.n_in, job.n_out, p, d)
            for r in singles
            if (p := m.engine_prefill_tps(r)) and (d := m.engine_decode_tps(r))
        ),
        Fig.AGGREGATE: m.stat(m.aggregate_tps(batches)),
        Fig.ACCEPTANCE: m.stat(a for r in singles if (a := m.acceptance([r])) is not None),
    }
    delta = result.metrics_delta
    mal = m.mean_accepted_length(
        delta.get("spec_decode_num_accepted_tokens_total", 0.0),
        delta.get("spec_decode_num_drafts_total", 0.0),
    )
    s[Fig.MEAN_ACCEPTED_LENGTH] = m.stat([mal])
    result.summary = {str(k): v for k, v in s.items() if v is not None}
    result.per_position = m.per_position_acceptance(delta)
    result.busy = busy_record(result, job, singles, batches)


def _prompt_n(rec: RequestRecord, n_in: int) -> int:
    """The prompt tokens the engine took as new; an envelope turn's count less the held prefix's
    tokens it evaluated again (the envelope's reuse check judges those)."""
    prompt_n = int(rec.timings.get("prompt_n", n_in))
    if rec.kind == "cell" and "cache_n" in rec.timings and rec.depth > 0:
        prompt_n -= max(0, rec.depth - int(rec.timings["cache_n"]))
    return prompt_n


def _flag(result: LaneResult, job: JobSpec, singles: list[RequestRecord], log_tail: str) -> None:
    result.flags = []  # recomputed from the records: summarize may run again (e.g. after a resume)
    if result.status == LaneStatus.FLAGGED:
        result.status = LaneStatus.OK
    failed = [r for r in result.samples if not r.ok]
    if failed:
        result.flags.append(f"{len(failed)} request(s) failed: {failed[0].error}")
        measured = [r for r in result.samples if r.kind in ("single", "cell")]
        if measured and not singles and result.status == LaneStatus.OK:
            result.status = LaneStatus.FAILED  # not one measured request came back whole
            result.error = f"every measured request failed: {failed[0].error}"
    drafted = (
        m.acceptance(singles) is not None or result.metrics_delta.get("spec_decode_num_drafts_total", 0) > 0
    )
    if result.lane.draft is not None and singles and not drafted:
        why = _reason_in_log(log_tail)
        result.flags.append(
            "asked for drafting but the server drafted nothing (no draft_n in timings)"
            + (f": {why}" if why else "")
        )
    if singles and not any("prompt_n" in r.timings for r in singles):
        result.flags.append(f"the engine reported no prompt length: prompts of {job.n_in} tokens unconfirmed")
    short = [r for r in singles if _prompt_n(r, job.n_in) != job.n_in]
    if short:
        result.flags.append(
            f"engine processed {short[0].timings.get('prompt_n')} prompt tokens, not {job.n_in}"
        )
    cut = [r for r in singles if int(r.timings.get("predicted_n", job.n_out)) != job.n_out]
    if cut:
        result.flags.append(
            f"engine generated {cut[0].timings.get('predicted_n')} tokens, not {job.n_out} "
            "(it stopped early: does it honour ignore_eos?)"
        )
    result.flags += token_count_flags(singles)
    result.flags += result.request.notes if result.request else []
    if result.lane.url is None and not job.envelope and job.aggregate > result.lane.slots:
        result.flags.append(
            f"{job.aggregate} concurrent jobs on {result.lane.slots} slot(s): requests queued"
        )
    if result.flags and result.status == LaneStatus.OK:
        result.status = LaneStatus.FLAGGED


def token_count_flags(singles: list[RequestRecord]) -> list[str]:
    """Say where a stream's chunks were not its tokens, and which count client decode used
    (records of a lanebench that did not tell tokens from chunks say nothing of it)."""
    singles = [r for r in singles if r.token_count is not None]
    if not singles:
        return []
    of = f" (in {{}} of {len(singles)} requests)"
    unknown = [r for r in singles if r.token_count == TokenCount.CHUNKS and "predicted_n" not in r.timings]
    short = [r for r in singles if r.stream_tokens != m.generated_tokens(r)]
    lumped = [r for r in singles if r.stream_chunks and r.stream_chunks != r.stream_tokens]
    if unknown:
        return [
            "the server gave no token count: client decode counts stream chunks as tokens"
            + of.format(len(unknown))
        ]
    if short:
        r, total = short[0], m.generated_tokens(short[0])
        carried = (
            f"{r.stream_chunks} chunks with text"
            if r.token_count == TokenCount.CHUNKS
            else f"{r.stream_tokens} tokens (counted by {r.token_count}) in {r.stream_chunks} chunks"
        )
        return [
            f"the stream carried {carried} for the engine's {total} tokens: client decode counts the "
            f"engine's {total} over the stream's time" + of.format(len(short))
        ]
    if lumped:
        r = lumped[0]
        return [
            f"stream chunks are not tokens: {r.stream_chunks} chunks carried {r.stream_tokens} tokens "
            f"(counted by {r.token_count}); client decode counts tokens" + of.format(len(lumped))
        ]
    return []
