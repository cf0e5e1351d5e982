"""Three views of a lane's speed, and where the gaps between them go (pure).

- **kernel**: llama-bench with the lane's settings (``engines.llamabench``): no server, no HTTP,
  no sampler;
- **engine**: the server's own ``timings`` for the same job;
- **client**: lanebench's clock (time to first token for prefill, the stream rate for decode).

Each step down loses some rate; ``where_time_goes`` gives the loss in % and in milliseconds per
request of the standard job. The measured milliseconds stay numbers (time to first token −
``prompt_ms``, the stream against the engine's timer, context checkpoints the server log shows);
a cause is named only where the attribution experiment (``run --attribute``, ``attribution.py``)
moved that step's figure beyond the noise with one suspect switched off; the rest is
"unattributed".
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from lanebench.analysis import metrics as m
from lanebench.analysis.attribution import MIN_N, causes, outside_ms, tested
from lanebench.config.job import JobSpec
from lanebench.records.attribution import AttributionRecord, Effect
from lanebench.records.baseline import BaselineRecord
from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord

_CHECKPOINT = re.compile(r"created context checkpoint", re.IGNORECASE)
_CACHE_UPDATE = re.compile(r"prompt cache update took ([\d.]+) ms")  # llama-server -lv 4, per task


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


def _named(found: list[Effect]) -> str:
    """The suspects an experiment showed, each with what switching it off saved."""
    return "; ".join(
        f"{e.label}: switching it off ({e.change}) saved {e.saved_ms:,.1f} ms per request" for e in found
    )


def _verdict(rec: AttributionRecord | None, figure: str, step: str) -> str:
    """A step's cause: the suspects its experiment showed, else "unattributed" (with how many
    suspects were tested, when an experiment ran)."""
    found = causes(rec, figure, step)
    n = tested(rec)
    if found:
        return _named(found) + " (each measured alone, so not summed); any rest unattributed"
    if rec is not None and n and rec.reps < MIN_N:
        return (
            f"unattributed ({n} suspect(s) tested with {rec.reps} request(s) each, fewer than the "
            f"{MIN_N} the cause rule needs)"
        )
    return f"unattributed ({n} suspect(s) tested, none moved it beyond the noise)" if n else "unattributed"


def _prefill_causes(singles: list[RequestRecord], rec: AttributionRecord | None, log_text: str) -> list[str]:
    out = []
    outside = _median([ms for r in singles if (ms := outside_ms(r)) is not None])
    if outside is not None:
        out.append(
            f"{outside:.1f} ms per request outside the engine's prompt timer (time to first token − "
            f"prompt_ms): {_verdict(rec, 'prefill', 'engine_to_client')}"
        )
    updates = [float(v) for v in _CACHE_UPDATE.findall(log_text)]
    if updates:
        out.append(
            f"server log: its prompt cache update took {statistics.median(updates):,.1f} ms per task "
            f"(median of {len(updates)}, {min(updates):,.1f}–{max(updates):,.1f}), before the prompt timer"
        )
    checkpoints = len(_CHECKPOINT.findall(log_text))
    if checkpoints:
        out.append(f"server log: {checkpoints} context checkpoint(s) created")
    return out


def _decode_causes(step: Step, singles: list[RequestRecord], rec: AttributionRecord | None) -> list[str]:
    stream = _median([d for r in singles if (d := m.client_decode_tps(r))])
    if stream is None or not step.engine_tps:
        return []
    pct = 100 * (1 - stream / step.engine_tps)
    if abs(pct) < 1:
        return ["engine → client: within 1%"]
    return [
        f"engine → client: {pct:.1f}% (the client's token arrival rate against the engine's timer): "
        + _verdict(rec, "decode", "engine_to_client")
    ]


def _kernel_notes(steps: list[Step], baseline: BaselineRecord | None, rec: AttributionRecord | None) -> None:
    sds = {
        "prefill": baseline.prefill_sd if baseline else None,
        "decode": baseline.decode_sd if baseline else None,
    }
    for step in steps:
        k, e = step.kernel_tps, step.engine_tps
        if k and e and e > k + 2 * (sds[step.figure] or 0.0):
            step.causes.append(
                f"inversion: the engine's {step.figure} is {100 * (e / k - 1):.1f}% faster than the kernels' "
                "(beyond twice llama-bench's sd): unattributed"
            )
        elif k and e and e <= k:
            step.causes.append("kernel → engine: " + _verdict(rec, step.figure, "kernel_to_engine"))
    if baseline is None or (baseline.prefill_tps is None and baseline.decode_tps is None):
        for step in steps:
            step.causes.append(
                "no kernel view: " + (baseline.note if baseline and baseline.note else "no llama-bench run")
            )


def where_time_goes(
    result: LaneResult,
    job: JobSpec,
    baseline: BaselineRecord | None,
    log_text: str = "",
    attribution: AttributionRecord | None = None,
) -> list[Step]:
    """Prefill and decode through the kernel, engine and client views of one lane; a cause is
    named only where ``attribution`` (``run --attribute``) showed it, else "unattributed"."""
    s = result.summary
    singles = result.measured_singles()  # the ones the summary came from (quiet ones first)

    def med(key: Fig) -> float | None:
        stat = s.get(key)
        return stat.median if stat is not None else None

    prefill = Step("prefill", job.n_in, baseline.prefill_tps if baseline else None, med(Fig.PREFILL))
    prefill.client_tps = med(Fig.PREFILL_CLIENT)
    decode = Step("decode", job.n_out, baseline.decode_tps if baseline else None, med(Fig.DECODE))
    decode.client_tps = med(Fig.DECODE_CLIENT)
    prefill.causes += _prefill_causes(singles, attribution, log_text)
    decode.causes += _decode_causes(decode, singles, attribution)
    _kernel_notes([prefill, decode], baseline, attribution)
    return [prefill, decode]
