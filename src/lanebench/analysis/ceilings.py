"""Per lane: the decode ceiling at a bandwidth, and how much of it the lane reached.

Bytes per generated token come from each lane's own GGUF (``roofline``); with speculation the
head's bytes and the measured accepted length count too (``spec_bytes_per_token``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lanebench.analysis.roofline import (
    Metadata,
    Roofline,
    TensorInfo,
    bytes_per_token,
    decode_ceiling_tps,
    pct_of_ceiling,
    read_gguf,
    spec_bytes_per_token,
)
from lanebench.analysis.specmodel import Advice
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.models import default_model_path
from lanebench.errors import LanebenchError
from lanebench.records.figures import Fig
from lanebench.records.lane import LaneResult


def _lane_model(spec: LaneSpec) -> Path:
    return spec.model or default_model_path()


class Rooflines:
    """Reads each GGUF once per ``advise`` (the 270M's vocabulary takes seconds to parse)."""

    def __init__(self, ctx: int) -> None:
        self.ctx = ctx
        self.files: dict[Path, tuple[list[TensorInfo], Metadata]] = {}

    def __call__(self, path: Path, kv: str, what: str) -> Roofline:
        if path not in self.files:
            self.files[path] = read_gguf(path, what)
        return bytes_per_token(*self.files[path], self.ctx, kv)


def _lane_bytes(lane: LaneResult, advice: Advice | None, rooflines: Rooflines) -> float:
    """Bytes per generated token of one lane; with speculation, per ``spec_bytes_per_token``."""
    spec = lane.lane
    target = rooflines(_lane_model(spec), spec.kv, f"lane {lane.name!r} model")
    draft = spec.draft
    if not (advice and advice.tokens_per_step and draft):
        return float(target.total_bytes)
    head_path = draft.path or _lane_model(spec)  # empty: the model drafts for itself
    head = rooflines(head_path, spec.kv, f"lane {lane.name!r} draft")
    drafted = advice.drafted_per_step or 0.0
    return spec_bytes_per_token(
        target.step_bytes(round(drafted + 1)), head.total_bytes, drafted, advice.tokens_per_step
    )


def lane_ceilings(
    job: JobSpec, lanes: Sequence[LaneResult], advice: list[Advice], bytes_per_s: float
) -> list[dict[str, Any]]:
    """Per lane: bytes per generated token (speculation included), ceiling tok/s and % reached.

    The KV cache is read at the job's mean decode context, ``n_in + n_out / 2``.
    """
    ctx = job.n_in + job.n_out // 2
    by_lane = {a.lane: a for a in advice}
    rooflines = Rooflines(ctx)
    rows = []
    for lane in lanes:
        row: dict[str, Any] = {"lane": lane.name, "ctx": ctx}
        rows.append(row)
        if lane.lane.url is not None:
            row["error"] = "served elsewhere (engine attached by URL): its model file is not here to read"
            continue
        try:
            per_token = _lane_bytes(lane, by_lane.get(lane.name), rooflines)
        except LanebenchError as exc:
            row["error"] = str(exc)
            continue
        ceiling = decode_ceiling_tps(per_token, bytes_per_s)
        stat = lane.summary.get(Fig.DECODE)
        tps = stat.median if stat is not None else None
        row.update(
            bytes_per_token=per_token,
            ceiling_tps=ceiling,
            decode_tps=tps,
            pct=pct_of_ceiling(tps, ceiling) if tps else None,
            # figure -> cores when measured on a busy machine (lanebench.busy), for the table's mark
            busy=dict(lane.busy.figures) if lane.busy and lane.busy.figures else None,
        )
    return rows
