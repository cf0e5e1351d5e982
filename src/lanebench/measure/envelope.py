"""The operating envelope on a running server: each lane across context depth and concurrency.

At depth *d* a request continues a conversation of *d* tokens the server already holds. Stream
*i* of a batch is pinned to slot *i* and has a conversation of its own (``Conversations``); its
prefix is put into the slot once per depth (a ``fill`` request: the prefix plus a few pad
tokens, so the server's context checkpoint lands exactly at *d* on models with sliding-window
attention), and every measured request is that prefix plus ``n_in`` fresh tokens, sent with the
prompt cache kept. The server's own counters then confirm the reuse: ``timings.cache_n`` must be
*d* and ``prompt_n`` the fresh ``n_in`` (``analysis.envelope`` counts it per cell; a lane whose
prefix was prefilled again is flagged). Depths run in increasing order, so each fill only
adds the tokens between one depth and the next.

At concurrency *c* a batch is *c* such streams started together; every stream's token arrivals
are kept for the steady-state window. Warm-up batches run once, at the lane's first cell.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import aiohttp

from lanebench.analysis import metrics as m
from lanebench.engines.base import CacheUse, Turn
from lanebench.errors import LaneFailed
from lanebench.measure.job import LaneJob, sent, token_key
from lanebench.measure.workloads import Conversations
from lanebench.records.samples import AggregateRecord, RequestRecord, SampleKind

PAD = 4  # tokens after a fill's prefix: llama-server checkpoints 4 tokens before a prompt's end


class EnvelopeJob(LaneJob):
    """Every (depth, concurrency) cell of the job on one endpoint, recording into ``result``.

    ``deadline`` (``time.monotonic()``): with a budget, the time this lane's cells must end by;
    each cell's repetitions are chosen from its first batch to fit (``_reps_for``)."""

    _conv: Conversations | None = None
    _last: dict[int, int]  # per slot: the token the cache holds right after the conversation
    deadline: float | None = None
    done_cells: AbstractSet[tuple[int, int]] = frozenset()  # cells a resume kept: not measured again

    async def _prepare(self, session: aiohttp.ClientSession) -> None:
        await super()._prepare(session)
        tokens = self._tokens()
        if tokens is None:
            raise LaneFailed(
                f"lane {self.plan.lane.name!r}: the envelope needs the engine's token ids (exact "
                f"conversation prefixes); engine {self.engine.name!r} could not tokenise the corpus"
            )
        self._conv = Conversations(tokens, self.job.n_in, max(self.job.concurrency_levels), PAD)
        self._last = {}

    def _tokens(self) -> list[int] | None:
        return self.state.tokens.get(token_key(self.plan))

    async def _turn(
        self,
        session: aiohttp.ClientSession,
        kind: SampleKind,
        prompt: list[int],
        n_out: int,
        rep: int,
        slot: int,
        depth: int,
        streams: int,
        t_batch: float,
    ) -> RequestRecord:
        turn = Turn(len(prompt), n_out, self.job.seed, self.speculative, CacheUse(slot))
        req = self.engine.request(self.plan, prompt, turn)
        if self.result.request is None and kind == "cell":
            self.result.request = sent(req, prompt)
        start = time.perf_counter() - t_batch
        rec = await self._send(session, req, kind, rep, slot)
        rec.n_in = len(prompt) - depth if kind != "fill" else len(prompt)
        rec.depth, rec.concurrency, rec.start_offset_s = depth, streams, start
        return rec

    async def _fill(self, session: aiohttp.ClientSession, depth: int, streams: int) -> None:
        """Put each stream's conversation prefix of ``depth`` tokens into its slot."""
        assert self._conv is not None
        for slot in range(streams):
            prompt = self._conv.prefix(slot, depth) + self._conv.pad(slot)
            rec = await self._turn(session, "fill", prompt, 0, 0, slot, depth, 1, time.perf_counter())
            self._record(rec)
            if not rec.ok:
                raise LaneFailed(
                    f"lane {self.plan.lane.name!r}: filling slot {slot} with {depth} tokens of "
                    f"conversation failed: {rec.error}",
                    self.endpoint.log_tail(),
                )
            self._last[slot] = self._conv.pad(slot)[0]

    async def _batch_at(self, session: aiohttp.ClientSession, kind: SampleKind, depth: int, streams: int,
                        rep: int) -> float:  # fmt: skip
        """One batch of ``streams`` concurrent turns at ``depth``; returns its wall (s)."""
        assert self._conv is not None
        prompts = []
        for slot in range(streams):
            turn = self._conv.turn(slot, self._next_prompt, avoid=self._last.get(slot))
            self._next_prompt += 1
            self._last[slot] = turn[0]
            prompts.append(self._conv.prefix(slot, depth) + turn)
        start = self.meter.start() if self.meter else None
        t0 = time.perf_counter()
        recs = await asyncio.gather(
            *(
                self._turn(session, kind, p, self.job.n_out, rep, i, depth, streams, t0)
                for i, p in enumerate(prompts)
            )
        )
        wall = time.perf_counter() - t0
        load = self.meter.stop(start) if self.meter else None
        for rec in recs:
            rec.load = load
            self._record(rec)
        if kind == "cell":
            ok = all(r.ok for r in recs)
            tokens = sum(int(r.timings.get("predicted_n", r.stream_tokens)) for r in recs if r.ok)
            errors = "; ".join(r.error for r in recs if r.error)
            self._record(AggregateRecord(rep=rep, streams=streams, wall_s=wall, tokens=tokens, ok=ok,
                                         error=errors or None, load=load, depth=depth))  # fmt: skip
        return wall

    def _reps_for(self, first_wall: float, cells_left: int, deadline: float | None) -> int:
        """Repetitions of a cell: the job's, or with a budget what the time left affords (at least 3,
        at most ``max_reps``), judged from the cell's first batch."""
        if deadline is None:
            return self.job.reps
        per_cell = (deadline - time.monotonic()) / max(cells_left, 1)
        return max(
            3, min(self.job.max_reps, int(per_cell // max(first_wall, 1e-3)) + 1)
        )  # 3: the noise rule's least

    async def _cells(
        self, session: aiohttp.ClientSession, depths: Sequence[int], levels: Sequence[int]
    ) -> None:
        deadline = self.deadline
        cells_left = sum(1 for d in depths for c in levels if (d, c) not in self.done_cells)
        warm = True
        for depth in depths:
            here = [c for c in levels if (depth, c) not in self.done_cells]
            if not here:
                continue  # every cell of this depth kept from before a resume
            if depth > 0:
                await self._fill(session, depth, max(levels))
            for streams in here:
                if warm:
                    for w in range(self.job.warmup):
                        await self._batch_at(session, "warmup", depth, streams, w)
                    warm = False
                first = await self._batch_at(session, "cell", depth, streams, 0)
                reps = self._reps_for(first, cells_left, deadline)
                for rep in range(1, reps):
                    await self._batch_at(session, "cell", depth, streams, rep)
                cells_left -= 1

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            await self._prepare(session)
            before = await self.engine.counters(session, self.endpoint)
            await self._cells(session, self.job.depth_levels, self.job.concurrency_levels)
            after = await self.engine.counters(session, self.endpoint)
            self.result.metrics_delta = m.counter_delta(before, after)
