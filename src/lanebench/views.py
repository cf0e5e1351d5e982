"""Three views of a lane's speed, and where the gaps between them go (pure).

- **kernel**: llama-bench with the lane's settings (``engines.llamabench``): no server, no HTTP,
  no sampler;
- **engine**: the server's own ``timings`` for the same job;
- **client**: lanebench's clock (time to first token for prefill, the stream rate for decode).

Each step down loses some rate; ``where_time_goes`` gives the loss in % and in milliseconds per
request of the standard job, and names a cause only where the run's own data show it (the
engine's prompt timer against the client's time to first token, context-checkpoint lines in the
server log); anything else is "unattributed".
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from lanebench import metrics as m
from lanebench.engines.llamabench import BaselineRecord
from lanebench.figures import Fig
from lanebench.records import JobSpec, LaneResult

_CHECKPOINT = re.compile(r"created context checkpoint", re.IGNORECASE)


@dataclass(slots=True)
class Step:
    """One figure (prefill or decode) through the three views."""

    figure: str
    tokens: int
    kernel_tps: float | None = None
    engine_tps: float | None = None
    client_tps: float | None = None
    causes: list[str] = field(default_factory=list)

    @staticmethod
    def _loss(fast: float | None, slow: float | None, tokens: int) -> tuple[float | None, float | None]:
        if not fast or not slow:
            return None, None
        return 100 * (1 - slow / fast), 1000 * (tokens / slow - tokens / fast)

    @property
    def kernel_to_engine(self) -> tuple[float | None, float | None]:
        """(% of the kernel rate lost, ms per request lost) from kernel to engine."""
        return self._loss(self.kernel_tps, self.engine_tps, self.tokens)

    @property
    def engine_to_client(self) -> tuple[float | None, float | None]:
        return self._loss(self.engine_tps, self.client_tps, self.tokens)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernel_to_engine"] = self.kernel_to_engine
        d["engine_to_client"] = self.engine_to_client
        return d


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def where_time_goes(
    result: LaneResult, job: JobSpec, baseline: BaselineRecord | None, log_text: str = ""
) -> list[Step]:
    """Prefill and decode through the kernel, engine and client views of one lane."""
    s = result.summary
    singles = result.measured_singles()  # the ones the summary came from (quiet ones first)

    def med(key: Fig) -> float | None:
        stat = s.get(key)
        return stat.median if stat is not None else None

    prefill = Step("prefill", job.n_in, baseline.prefill_tps if baseline else None, med(Fig.PREFILL))
    prefill.client_tps = med(Fig.PREFILL_CLIENT)
    decode = Step("decode", job.n_out, baseline.decode_tps if baseline else None, med(Fig.DECODE))
    decode.client_tps = med(Fig.DECODE_CLIENT)

    # engine -> client, prefill: what the client waited for beyond the engine's prompt timer
    outside = _median(
        [
            1000 * r.ttft_s - float(r.timings["prompt_ms"])
            for r in singles
            if r.ttft_s and "prompt_ms" in r.timings
        ]
    )
    if outside is not None:
        prefill.causes.append(
            f"{outside:.1f} ms per request outside the engine's prompt timer: HTTP, slot scheduling, "
            "the first token's sampling and its streamed chunk (time to first token − prompt_ms)"
        )
    stream = _median([d for r in singles if (d := m.client_decode_tps(r))])
    if stream is not None and decode.engine_tps:
        pct = 100 * (1 - stream / decode.engine_tps)
        decode.causes.append(
            f"engine → client: streaming, {pct:.1f}% "
            "(the client's token arrival rate against the engine's timer)"
            if abs(pct) >= 1
            else "engine → client: within 1% (streaming costs nothing measurable here)"
        )
    checkpoints = len(_CHECKPOINT.findall(log_text))
    if checkpoints:
        prefill.causes.append(f"context checkpoints after the prompt: {checkpoints} created (server log)")
    for step in (prefill, decode):
        if step.kernel_tps and step.engine_tps and step.engine_tps <= step.kernel_tps:
            step.causes.append(
                "kernel → engine: unattributed (the server adds sampling over the vocabulary and its "
                "slot loop to the kernels; these data do not separate them)"
            )
    sds = {
        "prefill": baseline.prefill_sd if baseline else None,
        "decode": baseline.decode_sd if baseline else None,
    }
    for step in (prefill, decode):
        k, e = step.kernel_tps, step.engine_tps
        if k and e and e > k + 2 * (sds[step.figure] or 0.0):
            step.causes.append(
                f"inversion: the engine's {step.figure} is {100 * (e / k - 1):.1f}% faster than the kernels' "
                "(beyond twice llama-bench's sd): a busy machine during llama-bench, or different settings"
            )
    if baseline is None or (baseline.prefill_tps is None and baseline.decode_tps is None):
        for step in (prefill, decode):
            step.causes.append(
                "no kernel view: " + (baseline.note if baseline and baseline.note else "no llama-bench run")
            )
    return [prefill, decode]
