"""Reading ``llama-perplexity`` output (pure functions, no I/O).

``--kl-divergence`` prints, on stdout, a per-chunk table and then three blocks
(``====== Perplexity statistics ======``, ``KL divergence statistics``, ``Token probability
statistics``) with lines such as ``Mean    KLD:   0.114239 ±   0.010191`` and
``Same top p: 81.765 ± 1.712 %``. The base run (``--kl-divergence-base``) prints only the
running perplexity per chunk, ``[1]7.8311,[2]8.6638,``. The tool exits 0 even when it fails
(a missing base file, a context that does not fit): its log lines at level ``E`` say why.
Fixtures: tests/fixtures/perplexity/ (real b11434 output, commands in SOURCES.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan))"
_PM = rf"{_NUM}\s*±\s*{_NUM}"

_LINES = {
    "ppl": rf"^Mean PPL\(Q\)\s*:\s*{_PM}",
    "ppl_base": rf"^Mean PPL\(base\)\s*:\s*{_PM}",
    "ppl_ratio": rf"^Mean PPL\(Q\)/PPL\(base\)\s*:\s*{_PM}",
    "ln_ratio": rf"^Mean ln\(PPL\(Q\)/PPL\(base\)\)\s*:\s*{_PM}",
    "kld": rf"^Mean\s+KLD:\s*{_PM}",
    "rms_dp": rf"^RMS Δp\s*:\s*{_PM}\s*%",
    "same_top": rf"^Same top p:\s*{_PM}\s*%",
}
_SINGLE = {
    "kld_max": rf"^Maximum KLD:\s*{_NUM}",
    "kld_p99": rf"^99\.0%\s+KLD:\s*{_NUM}",
    "kld_median": rf"^Median\s+KLD:\s*{_NUM}",
}


@dataclass(slots=True)
class KldStats:
    """One ``--kl-divergence`` run: perplexities, mean KLD (nats/token), KLD percentiles,
    RMS Δp and same-top-1 (percent), each ``*_err`` the tool's own ± (one standard error)."""

    ppl: float
    ppl_err: float
    ppl_base: float
    ppl_base_err: float
    ppl_ratio: float
    ppl_ratio_err: float
    kld_mean: float
    kld_err: float
    kld_p99: float
    kld_max: float
    kld_median: float
    rms_dp: float
    rms_dp_err: float
    same_top1: float
    same_top1_err: float
    chunks: int


class ParseError(ValueError):
    """The output holds no statistics; the message says what the tool said instead."""


def error_lines(log: str, limit: int = 3) -> list[str]:
    """The tool's ``E``-level log lines (``0.03.057 E kl_divergence: failed to open x``), their
    text only; the last ``limit`` of them."""
    out = []
    for line in log.splitlines():
        m = re.match(r"^\s*[\d.]+\s+E\s+(.*\S)", line)
        if m:
            out.append(m.group(1))
    return out[-limit:]


def _chunks(stdout: str) -> int:
    return len(re.findall(r"^\s*\d+\s+[\d.]+\s*±", stdout, re.M))


def parse_kld(stdout: str, stderr: str = "") -> KldStats:
    """The statistics of a ``--kl-divergence`` run; ``ParseError`` naming the tool's own error
    (or the first missing line) when there are none."""
    found: dict[str, tuple[float, ...]] = {}
    for key, pattern in _LINES.items():
        m = re.search(pattern, stdout, re.M)
        if m:
            found[key] = (float(m.group(1)), float(m.group(2)))
    for key, pattern in _SINGLE.items():
        m = re.search(pattern, stdout, re.M)
        if m:
            found[key] = (float(m.group(1)),)
    missing = [k for k in (*_LINES, *_SINGLE) if k not in found and k != "ln_ratio"]
    if missing:
        errors = error_lines(stderr) or error_lines(stdout)
        why = "; ".join(errors) if errors else f"no '{missing[0]}' statistic in its output"
        raise ParseError(why)
    return KldStats(
        ppl=found["ppl"][0],
        ppl_err=found["ppl"][1],
        ppl_base=found["ppl_base"][0],
        ppl_base_err=found["ppl_base"][1],
        ppl_ratio=found["ppl_ratio"][0],
        ppl_ratio_err=found["ppl_ratio"][1],
        kld_mean=found["kld"][0],
        kld_err=found["kld"][1],
        kld_p99=found["kld_p99"][0],
        kld_max=found["kld_max"][0],
        kld_median=found["kld_median"][0],
        rms_dp=found["rms_dp"][0],
        rms_dp_err=found["rms_dp"][1],
        same_top1=found["same_top"][0],
        same_top1_err=found["same_top"][1],
        chunks=_chunks(stdout),
    )


def parse_base(stdout: str, stderr: str = "") -> tuple[int, float, float | None]:
    """(chunks, final perplexity, its ± when the log gives it) of a ``--kl-divergence-base``
    run (``Final estimate: PPL = 8.6638 +/- 0.96796`` in the log); ``ParseError`` when it
    scored nothing."""
    values = re.findall(rf"\[(\d+)\]{_NUM}", stdout)
    if not values:
        errors = error_lines(stderr) or error_lines(stdout)
        raise ParseError("; ".join(errors) if errors else "it printed no perplexity")
    last = values[-1]
    m = re.search(rf"Final estimate: PPL = {_NUM} \+/- {_NUM}", stderr + stdout)
    return int(last[0]), float(last[1]), float(m.group(2)) if m else None
