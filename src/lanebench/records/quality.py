"""What a lane costs in quality against the reference lane (``QualityRecord``), or, for a
drafting lane, the greedy check's verdict instead of a figure."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from lanebench.records.codec import Record, from_data


class QualityStatus(StrEnum):
    REFERENCE = "reference"  # the lane the others are compared with (measured against itself)
    MEASURED = "measured"  # figures from llama-perplexity --kl-divergence against the reference
    # speculative lanes get a verdict, never a figure: their greedy token ids against their plain
    # partner's (the same target without drafting)
    LOSSLESS = "lossless"  # every compared greedy token identical
    NOT_LOSSLESS = "not-lossless"  # a compared greedy token differs (see divergence_*)
    UNCHECKED = "unchecked"  # nothing to compare (see ``note``)
    EMULATED = "emulated"  # synthetic acceptance: output not the model's, no figures
    UNAVAILABLE = "unavailable"  # could not be measured (no llama-perplexity, an attached server, ...)
    FAILED = "failed"  # llama-perplexity ran and failed (see ``note``)


@dataclass(slots=True)
class QualityRecord(Record):
    """What a lane costs in output quality against the reference lane.

    Figures come from the build's own ``llama-perplexity --kl-divergence``; each ``*_err`` is
    the tool's own ± (one standard error). KLD in nats per token; ``same_top1`` and ``rms_dp`` in
    percent; ``tokens`` is how many tokens were scored.

    A speculative lane has no figures: ``greedy`` is its check (True when its greedy token ids
    equal those of ``partner``, the plain lane of the same target; False when they differ; None
    when unchecked), over ``greedy_checked`` requests and ``greedy_tokens`` generated tokens, of
    which ``greedy_same`` were identical up to each request's first divergence. The first
    divergence is at generated token ``divergence_token`` (1-based) of compared request
    ``divergence_request`` (1-based), ``divergence_label`` naming it (e.g. ``single rep 2``)."""

    status: QualityStatus
    reference: str | None = None
    tokens: int = 0
    ctx: int = 0
    ppl: float | None = None
    ppl_err: float | None = None
    ppl_base: float | None = None
    ppl_base_err: float | None = None
    ppl_ratio: float | None = None
    ppl_ratio_err: float | None = None
    kld_mean: float | None = None
    kld_err: float | None = None
    kld_p99: float | None = None
    kld_max: float | None = None
    same_top1: float | None = None
    same_top1_err: float | None = None
    rms_dp: float | None = None
    rms_dp_err: float | None = None
    greedy: bool | None = None
    greedy_checked: int = 0  # requests compared
    partner: str | None = None
    greedy_tokens: int = 0
    greedy_same: int = 0
    greedy_differing: int = 0  # requests whose ids differ
    divergence_request: int | None = None
    divergence_token: int | None = None
    divergence_label: str = ""
    fingerprint: str | None = None
    seconds: float | None = None  # wall time of the llama-perplexity run this lane used
    note: str = ""

    @property
    def has_figures(self) -> bool:
        return self.kld_mean is not None

    @property
    def speculative(self) -> bool:
        """A speculative lane's verdict (lossless, not lossless, unchecked)."""
        return self.status in SPECULATIVE

    @classmethod
    def from_dict(cls, d: Any) -> QualityRecord:
        """The record from its ``to_dict`` form (no status: unavailable). Records of speculative
        lanes written before schema 6 carried their target's figures (a KLD of 0.0 they never
        measured): they are read as a verdict only, from their greedy check."""
        if not isinstance(d, dict):
            raise TypeError(f"QualityRecord: expected an object, got {type(d).__name__}")
        rec = from_data(cls, {**d, "status": d.get("status") or QualityStatus.UNAVAILABLE})
        if rec.status in SPECULATIVE:
            for name in FIGURE_FIELDS:
                setattr(rec, name, None)
            rec.tokens = rec.ctx = 0
            if rec.status == QualityStatus.LOSSLESS and rec.greedy is not True:
                rec.status = QualityStatus.NOT_LOSSLESS if rec.greedy is False else QualityStatus.UNCHECKED
        return rec


SPECULATIVE = (QualityStatus.LOSSLESS, QualityStatus.NOT_LOSSLESS, QualityStatus.UNCHECKED)


FIGURE_FIELDS = tuple(
    f.name for f in fields(QualityRecord) if f.name.startswith(("ppl", "kld", "same_top1", "rms_dp"))
)
