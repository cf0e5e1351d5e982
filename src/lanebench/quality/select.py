"""Which lane is the reference, and which lanes share one measurement.

The reference is the lane named ``reference = true`` (or ``--reference NAME``); else the lane,
among those lanebench starts with llama.cpp and that do not draft (no ``draft``, no drafting
switch in ``extra_args`` or ``env``), with an F16 KV cache and the
widest weights (most bits per weight, from the GGUF's own tensor sizes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lanebench.config.lanes import LaneSpec
from lanebench.errors import BadInput, LanebenchError
from lanebench.gguf.reader import open_gguf
from lanebench.quality.flags import drafting_args


@dataclass(slots=True)
class QualityLane:
    """A planned lane as quality needs it: the build and model its engine's ``quality_tool``
    names, or None for both and ``unavailable`` saying why (an attached server, an engine
    whose output llama-perplexity cannot reproduce)."""

    spec: LaneSpec
    server_bin: Path | None = None
    model: Path | None = None
    unavailable: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def measurable(self) -> bool:
        return self.server_bin is not None and self.model is not None and not self.spec.emulated

    @property
    def drafting(self) -> bool:
        """The lane decodes speculatively: a ``draft``, or a drafting switch in ``extra_args`` or
        ``env`` (``-md``, ``--spec-type draft-simple``, ``--spec-default``, ...)."""
        return self.spec.draft is not None or drafting_args(self.spec.extra_args, self.spec.env)


def bits_per_weight(model: Path) -> float:
    """Bytes of all tensors over their elements, in bits; 0 when the file cannot be read."""
    try:
        tensors = open_gguf(model).tensors.values()
    except LanebenchError:
        return 0.0
    n = sum(t.n_elements for t in tensors)
    return 8 * sum(t.n_bytes for t in tensors) / n if n else 0.0


def pick_reference(lanes: Sequence[QualityLane], named: str | None = None) -> QualityLane | None:
    """The reference lane; ``BadInput`` for a name that is not a lane or cannot be one."""
    if named is None:
        marked = [q for q in lanes if q.spec.reference]
        if len(marked) > 1:
            names = ", ".join(repr(q.name) for q in marked)
            raise BadInput(f"lanes {names} all say reference = true; mark one (or pass --reference NAME)")
        named = marked[0].name if marked else None
    if named is not None:
        found = [q for q in lanes if q.name == named]
        if not found:
            known = ", ".join(q.name for q in lanes)
            raise BadInput(f"--reference: no lane named {named!r} (lanes: {known})")
        ref = found[0]
        if not ref.measurable or ref.drafting:
            raise BadInput(
                f"--reference: lane {named!r} cannot be the reference: it must be a llama.cpp lane "
                "that lanebench starts, without a draft or emulated acceptance"
            )
        return ref
    candidates = [q for q in lanes if q.measurable and not q.drafting]
    if not candidates:
        return None
    assert all(q.model is not None for q in candidates)
    return max(
        candidates,
        key=lambda q: (q.spec.kv == "f16", bits_per_weight(q.model or Path())),
    )  # max keeps the first of equals
