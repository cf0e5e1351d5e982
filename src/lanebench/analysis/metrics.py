"""Pure functions from records to figures. No I/O; units are in the names."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence

from lanebench.records.samples import AggregateRecord, RequestRecord, Stat


def normalized_wall_s(n_in: int, n_out: int, prefill_tps: float, decode_tps: float) -> float:
    """Seconds a job of ``n_in`` prompt and ``n_out`` generated tokens takes at these rates.

    This is the seed report's column: ``n_in / prefill + n_out / decode``.
    """
    if prefill_tps <= 0 or decode_tps <= 0:
        raise ValueError("rates must be positive")
    return n_in / prefill_tps + n_out / decode_tps


def stat(values: Iterable[float | None]) -> Stat | None:
    """Median, min and max of the values that are present; None when there are none."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return Stat(median=statistics.median(xs), min=min(xs), max=max(xs), n=len(xs))


def engine_prefill_tps(rec: RequestRecord) -> float | None:
    """Prompt tokens per second as the engine timed them (``timings.prompt_per_second``)."""
    v = rec.timings.get("prompt_per_second")
    return float(v) if v and rec.ok else None


def engine_decode_tps(rec: RequestRecord) -> float | None:
    """Generated tokens per second as the engine timed them (``timings.predicted_per_second``)."""
    v = rec.timings.get("predicted_per_second")
    return float(v) if v and rec.ok else None


def client_prefill_tps(rec: RequestRecord) -> float | None:
    """Prompt tokens over the client's time to first token (includes HTTP and queueing)."""
    if not rec.ok or not rec.ttft_s or rec.ttft_s <= 0:
        return None
    return rec.n_in / rec.ttft_s


def generated_tokens(rec: RequestRecord) -> int:
    """Tokens the request generated: the engine's count (``timings.predicted_n``, from
    ``usage.completion_tokens`` where that is all it says) when it gives one, else the stream's."""
    v = rec.timings.get("predicted_n")
    if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
        return int(v)
    return rec.stream_tokens


def client_decode_tps(rec: RequestRecord) -> float | None:
    """Tokens that arrived after the first read over the time from the first read to the last.

    ``T · (N − F) / N / (t_last − t_first)``: N tokens the stream carried (counted per chunk,
    ``token_count`` says how), F of them in the first read, T = ``generated_tokens``. Where the
    stream counts every token, T = N and this is ``(N − F) / (t_last − t_first)``; where it
    could only count chunks, the engine's total T is spread over the chunks as they came."""
    n = rec.stream_tokens
    first = rec.first_tokens if rec.first_tokens is not None else min(n, 1)  # older records: 1
    if not rec.ok or not rec.decode_stream_s or rec.decode_stream_s <= 0 or n <= first:
        return None
    return generated_tokens(rec) * (n - first) / n / rec.decode_stream_s


def acceptance(records: Sequence[RequestRecord]) -> float | None:
    """Σ draft_n_accepted / Σ draft_n over the records; None if nothing was drafted."""
    drafted = sum(r.draft_n for r in records if r.ok)
    if drafted == 0:
        return None
    return sum(r.draft_n_accepted for r in records if r.ok) / drafted


def mean_accepted_length(accepted: float, verify_steps: float) -> float | None:
    """Tokens per verification step: 1 + accepted / steps (llama-server's "mean len")."""
    if verify_steps <= 0:
        return None
    return 1.0 + accepted / verify_steps


def aggregate_tps(batches: Sequence[AggregateRecord]) -> list[float]:
    """Tokens per second of each successful batch of concurrent jobs."""
    return [t for b in batches if (t := b.tokens_per_s) is not None]


_PROM_LINE = re.compile(r"^llamacpp:(?P<name>[a-zA-Z_:]+)(?P<labels>\{[^}]*\})?\s+(?P<value>\S+)$")


def parse_prometheus(text: str) -> dict[str, float]:
    """Parse llama-server's ``/metrics`` text into ``{name[{labels}]: value}``.

    Only ``llamacpp:`` series are kept; the prefix is dropped. Unparseable lines are skipped.
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _PROM_LINE.match(line.strip())
        if not m:
            continue
        try:
            out[m["name"] + (m["labels"] or "")] = float(m["value"])
        except ValueError:
            continue
    return out


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Differences of cumulative counters (``*_total`` series) across a job."""
    return {k: after[k] - before.get(k, 0.0) for k in after if k.split("{")[0].endswith("_total")}


def per_position_acceptance(delta: dict[str, float]) -> list[float]:
    """Share of verification steps that accepted the draft token at each position."""
    steps = delta.get("spec_decode_num_drafts_total", 0.0)
    if steps <= 0:
        return []
    pos: dict[int, float] = {}
    for key, value in delta.items():
        m = re.match(r'spec_decode_num_accepted_tokens_per_pos_total\{position="(\d+)"\}', key)
        if m:
            pos[int(m[1])] = value
    return [pos[i] / steps for i in sorted(pos)]


def median_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the median from order statistics.

    Uses the binomial(n, 1/2) ranks; None when ``n`` is too small for the confidence asked
    (n < 6 at 95%).
    """
    xs = sorted(values)
    n = len(xs)
    best: tuple[float, float] | None = None
    for j in range(n // 2, -1, -1):  # widen symmetric ranks (j, n-1-j) until coverage is reached
        k = n - 1 - j
        coverage = sum(math.comb(n, i) for i in range(j + 1, k + 1)) / 2**n
        if coverage >= confidence:
            best = (xs[j], xs[k])
            break
    return best


def ci_within(values: Sequence[float], target: float, confidence: float = 0.95) -> bool:
    """True when the CI half-width of the median is at most ``target`` × median."""
    ci = median_ci(values, confidence)
    if ci is None or not values:
        return False
    med = statistics.median(values)
    return med > 0 and (ci[1] - ci[0]) / 2 <= target * med
