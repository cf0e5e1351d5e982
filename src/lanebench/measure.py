"""Measure one lane on a running server: warm-up, repetitions, the N-slot aggregate.

Every request becomes a record handed to ``emit`` as soon as it completes, so nothing measured
is lost if a later request or the engine fails.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from lanebench import metrics as m
from lanebench.client import completion_body, get_json, get_text, stream_completion
from lanebench.errors import LaneFailed
from lanebench.records import AggregateRecord, JobSpec, LaneResult, RequestRecord
from lanebench.server import ServerProcess
from lanebench.workloads import PromptSource, corpus_text

Emit = Callable[[RequestRecord | AggregateRecord], None]

_TOKENS: dict[str, list[int]] = {}  # corpus token ids per model file: tokenised once per run


async def _corpus_tokens(session: aiohttp.ClientSession, base: str, model_key: str) -> list[int]:
    if model_key not in _TOKENS:
        out = await get_json(session, f"{base}/tokenize", {"content": corpus_text()})
        _TOKENS[model_key] = [int(t) for t in out["tokens"]]
    return _TOKENS[model_key]


async def _metrics(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    try:
        return m.parse_prometheus(await get_text(session, f"{base}/metrics"))
    except aiohttp.ClientError:
        return {}


class LaneJob:
    """The standard job against one server, recording into ``result``."""

    def __init__(
        self,
        server: ServerProcess,
        result: LaneResult,
        job: JobSpec,
        emit: Emit,
        *,
        model_key: str,
        request_timeout_s: float = 3600.0,
        speculative: dict[str, Any] | None = None,
    ) -> None:
        self.server = server
        self.result = result
        self.job = job
        self.emit = emit
        self.model_key = model_key
        self.request_timeout_s = request_timeout_s
        self.speculative = speculative
        self._next_prompt = 0

    def _body(self, prompts: PromptSource) -> dict[str, Any]:
        prompt = prompts.prompt(self._next_prompt)
        self._next_prompt += 1
        return completion_body(prompt, self.job.n_out, self.job.seed, self.speculative)

    def _record(self, rec: RequestRecord | AggregateRecord) -> None:
        if isinstance(rec, RequestRecord):
            self.result.samples.append(rec)
        else:
            self.result.aggregates.append(rec)
        self.emit(rec)

    async def _one(
        self, session: aiohttp.ClientSession, prompts: PromptSource, kind: Any, rep: int, idx: int = 0
    ) -> RequestRecord:
        rec = await stream_completion(
            session,
            self.server.base_url,
            self._body(prompts),
            kind=kind,
            rep=rep,
            stream_index=idx,
            timeout_s=self.request_timeout_s,
        )
        if not rec.ok:
            try:
                self.server.check_alive(grace_s=2.0)
            except LaneFailed:
                self._record(rec)  # the request that found the server dead is data too
                raise
        return rec

    def _more_reps(self, done: int) -> bool:
        """Fixed reps, or with a CI target: at least ``reps``, then until the CI fits or max_reps."""
        job = self.job
        if done < job.reps:
            return True
        if job.target_ci is None or done >= job.max_reps:
            return False
        decode = [d for r in self.result.samples if r.kind == "single" and (d := m.engine_decode_tps(r))]
        return not m.ci_within(decode, job.target_ci)

    async def run(self) -> None:
        base = self.server.base_url
        # llama-server closes a connection after a streamed reply; never reuse one
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                tokens = await _corpus_tokens(session, base, self.model_key)
            except (aiohttp.ClientError, KeyError, ValueError) as exc:
                self.server.check_alive(grace_s=2.0)
                raise LaneFailed(f"cannot tokenise the corpus: {exc}", self.server.log_tail()) from None
            prompts = PromptSource(tokens, self.job.n_in)
            for w in range(self.job.warmup):
                self._record(await self._one(session, prompts, "warmup", w))
            before = await _metrics(session, base)
            r = 0
            while self._more_reps(r):
                self._record(await self._one(session, prompts, "single", r))
                r += 1
            delta = m.counter_delta(before, await _metrics(session, base))
            self.result.metrics_delta = delta
            for r in range(self.job.reps if self.job.aggregate > 0 else 0):
                await self._batch(session, prompts, r)

    async def _batch(self, session: aiohttp.ClientSession, prompts: PromptSource, rep: int) -> None:
        n = self.job.aggregate
        t0 = time.perf_counter()
        recs = await asyncio.gather(*(self._one(session, prompts, "aggregate", rep, i) for i in range(n)))
        wall = time.perf_counter() - t0
        for rec in recs:
            self._record(rec)
        ok = all(r.ok for r in recs)
        tokens = sum(int(r.timings.get("predicted_n", r.stream_tokens)) for r in recs if r.ok)
        errors = "; ".join(r.error for r in recs if r.error)
        self._record(
            AggregateRecord(rep=rep, streams=n, wall_s=wall, tokens=tokens, ok=ok, error=errors or None)
        )


def _reason_in_log(log_tail: str) -> str:
    for line in reversed(log_tail.splitlines()):
        low = line.lower()
        if "draft" in low and re.search(r"compat|fail|error|mismatch|differ|refus", low):
            return line.strip()[:200]
    return ""


def summarize(result: LaneResult, job: JobSpec, log_tail: str = "") -> None:
    """Fill ``summary``, ``per_position`` and ``flags`` of a measured lane (pure)."""
    singles = [r for r in result.samples if r.kind == "single" and r.ok]
    s: dict[str, Any] = {
        "prefill_tps": m.stat(m.engine_prefill_tps(r) for r in singles),
        "decode_tps": m.stat(m.engine_decode_tps(r) for r in singles),
        "prefill_client_tps": m.stat(m.client_prefill_tps(r) for r in singles),
        "decode_client_tps": m.stat(m.client_decode_tps(r) for r in singles),
        "wall_s": m.stat(r.wall_s for r in singles),
        "normalized_wall_s": m.stat(
            m.normalized_wall_s(job.n_in, job.n_out, p, d)
            for r in singles
            if (p := m.engine_prefill_tps(r)) and (d := m.engine_decode_tps(r))
        ),
        "aggregate_tps": m.stat(m.aggregate_tps(result.aggregates)),
        "acceptance": m.stat(a for r in singles if (a := m.acceptance([r])) is not None),
    }
    delta = result.metrics_delta
    mal = m.mean_accepted_length(
        delta.get("spec_decode_num_accepted_tokens_total", 0.0),
        delta.get("spec_decode_num_drafts_total", 0.0),
    )
    s["mean_accepted_length"] = m.stat([mal])
    result.summary = {k: v for k, v in s.items() if v is not None}
    result.per_position = m.per_position_acceptance(delta)
    _flag(result, job, singles, log_tail)


def _flag(result: LaneResult, job: JobSpec, singles: list[RequestRecord], log_tail: str) -> None:
    result.flags = []  # recomputed from the records: summarize may run again (e.g. after a resume)
    if result.status == "flagged":
        result.status = "ok"
    failed = [r for r in result.samples if not r.ok]
    if failed:
        result.flags.append(f"{len(failed)} request(s) failed: {failed[0].error}")
    if result.lane.get("draft") and singles and m.acceptance(singles) is None:
        why = _reason_in_log(log_tail)
        result.flags.append(
            "asked for drafting but the server drafted nothing (no draft_n in timings)"
            + (f": {why}" if why else "")
        )
    short = [r for r in singles if int(r.timings.get("prompt_n", job.n_in)) != job.n_in]
    if short:
        result.flags.append(
            f"engine processed {short[0].timings.get('prompt_n')} prompt tokens, not {job.n_in}"
        )
    if job.aggregate > int(result.lane.get("slots") or 1):
        result.flags.append(
            f"{job.aggregate} concurrent jobs on {result.lane.get('slots')} slot(s): requests queued"
        )
    if result.flags and result.status == "ok":
        result.status = "flagged"
