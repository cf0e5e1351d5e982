"""Speculative lanes get a verdict, never a figure: their greedy token ids against their plain
partner's (pure).

A lane that drafts (a draft model, an MTP head, n-gram lookup) must generate, greedily, the very
token ids its target generates alone. Both lanes of a run send the same prompts in the same
order (request k of every lane is slice k of the corpus), so their sequential requests
(warm-up and single repetitions; concurrent ones may be batched differently) are compared id by
id. The verdict is "lossless: N of N greedy tokens identical", "not lossless: first divergence
at token k of request r", or "unchecked" with the reason: nothing else.

The partner is the plain lane that serves the same target: every lane field that can change
the target's greedy output equal (``TARGET_FIELDS``; threads, slots and context size too,
which should not change it but are not assumed not to), the same build and model file, and the
same ``extra_args`` and ``env`` once the speculative settings are set aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanebench.quality.flags import DRAFT_ENV, DRAFT_SWITCHES, Options, split_args, switches_drafting
from lanebench.quality.select import QualityLane
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.records.samples import RequestRecord

SEQUENTIAL = ("warmup", "single")
TARGET_FIELDS = (
    "engine", "kv", "flash_attn", "gpu_layers", "threads", "ctx", "slots",
    "split_mode", "tensor_split", "main_gpu", "devices", "rpc", "rpc_local",
)  # fmt: skip


@dataclass(slots=True)
class GreedyCheck:
    """The comparison of two lanes' sequential requests. ``identical`` is None when nothing
    could be compared (``why`` says why). Token positions are 1-based."""

    identical: bool | None
    requests: int = 0
    tokens: int = 0  # generated tokens compared: the longer of each pair
    same: int = 0  # of those, identical up to each pair's first divergence
    differing: int = 0  # requests whose ids differ
    first_request: int | None = None
    first_token: int | None = None
    first_label: str = ""
    why: str = ""


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The 0-based position where ``a`` and ``b`` first differ (one ending before the other
    differs there); None when they are equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _label(s: RequestRecord) -> str:
    return "warm-up" if s.kind == "warmup" else f"{s.kind} rep {s.rep + 1}"


def _sequential(samples: Sequence[RequestRecord]) -> list[RequestRecord]:
    return [s for s in samples if s.kind in SEQUENTIAL]


def check_greedy(spec: Sequence[RequestRecord], plain: Sequence[RequestRecord]) -> GreedyCheck:
    """Compare the speculative lane's sequential requests with the plain lane's, in order."""
    out = GreedyCheck(None)
    pairs = list(zip(_sequential(spec), _sequential(plain), strict=False))
    for a, b in pairs:
        if not (a.ok and b.ok and a.token_ids and b.token_ids):
            continue
        out.requests += 1
        k = first_divergence(a.token_ids, b.token_ids)
        out.tokens += max(len(a.token_ids), len(b.token_ids))
        out.same += len(a.token_ids) if k is None else k
        if k is not None:
            out.differing += 1
            if out.first_request is None:
                out.first_request, out.first_token, out.first_label = out.requests, k + 1, _label(a)
    if out.requests == 0:
        out.why = (
            "no sequential request of both lanes carried token ids"
            if pairs
            else "no sequential request of both lanes was measured"
        )
        return out
    out.identical = out.differing == 0
    return out


def target_args(spec_args: Sequence[str], env: dict[str, str], options: Options | None) -> tuple[Any, ...]:
    """``extra_args`` and ``env`` without what only the drafting sets (speculative options,
    drafting switches): what the target's output depends on. Without the build's options
    (``None``) only the drafting switches and their values are set aside."""
    if options is None:
        args: list[str] = []
        i = 0
        while i < len(spec_args):
            a = spec_args[i]
            if a in DRAFT_SWITCHES:  # each takes one value but --spec-default
                i += 1 if a == "--spec-default" else 2
                continue
            args.append(a)
            i += 1
        kept_env = {k: v for k, v in env.items() if k not in DRAFT_ENV}
    else:
        args = []
        for arg in split_args(spec_args, options):
            spec_only = arg.option is not None and arg.option.section == "speculative"
            if not spec_only and not switches_drafting(arg.flag, arg.value):
                args += arg.tokens
        spec_env = {n for n, o in options.by_env.items() if o.section == "speculative"} | DRAFT_ENV
        kept_env = {k: v for k, v in env.items() if k not in spec_env}
    return tuple(args), tuple(sorted(kept_env.items()))


def _resolved(p: Path | None) -> Path | None:
    return p.resolve() if p is not None else None


def differences(a: QualityLane, b: QualityLane, options: Options | None) -> list[str]:
    """The fields in which ``b`` serves another target than ``a`` (``field (a's vs b's)``)."""
    out = [
        f"{f} ({getattr(a.spec, f)!r} vs {getattr(b.spec, f)!r})"
        for f in TARGET_FIELDS
        if getattr(a.spec, f) != getattr(b.spec, f)
    ]
    for f in ("model", "server_bin"):
        va, vb = _resolved(getattr(a, f)), _resolved(getattr(b, f))
        if va != vb:
            out.append(f"{f} ({va} vs {vb})")
    (aa, ae), (ba, be) = (target_args(x.spec.extra_args, x.spec.env, options) for x in (a, b))
    if aa != ba:
        out.append(f"extra_args ({' '.join(aa) or 'none'} vs {' '.join(ba) or 'none'})")
    if ae != be:
        env = [" ".join(f"{k}={v}" for k, v in e) or "none" for e in (ae, be)]
        out.append(f"env ({env[0]} vs {env[1]})")
    return out


def plain_partner(
    lane: QualityLane, others: Sequence[QualityLane], options: Options | None = None
) -> tuple[QualityLane | None, str]:
    """The plain lane that serves the same target as ``lane``, or None and a line naming the
    closest plain lane and how it differs (``field (lane's vs the closest's)``)."""
    plain = [o for o in others if not o.drafting and not o.spec.emulated and o.name != lane.name]
    if not plain:
        return None, "no lane of the run serves its target without drafting"
    diffs = [(differences(lane, o, options), o) for o in plain]
    best, closest = min(diffs, key=lambda d: len(d[0]))
    if not best:
        return closest, ""
    return None, (
        f"no plain lane serves the same target (closest: {closest.name!r}, "
        f"which differs in {', '.join(best)})"
    )


def verdict_record(partner: str | None, check: GreedyCheck | None, why: str = "") -> QualityRecord:
    """The record of a speculative lane: a verdict against ``partner``, never a figure."""
    if check is None or check.identical is None:
        why = why or (check.why if check else "")
        return QualityRecord(QualityStatus.UNCHECKED, partner=partner, note=why)
    status = QualityStatus.LOSSLESS if check.identical else QualityStatus.NOT_LOSSLESS
    return QualityRecord(
        status, greedy=check.identical, greedy_checked=check.requests, partner=partner,
        greedy_tokens=check.tokens, greedy_same=check.same, greedy_differing=check.differing,
        divergence_request=check.first_request, divergence_token=check.first_token,
        divergence_label=check.first_label,
    )  # fmt: skip


def verdict(q: QualityRecord) -> str:
    """A speculative lane's quality in words: lossless, not lossless (where), or unchecked."""
    against = f" against {q.partner!r}" if q.partner else ""
    if q.status == QualityStatus.LOSSLESS:
        if not q.greedy_tokens:  # written before schema 6: requests compared by hash
            return f"lossless: greedy token ids identical{against} in {q.greedy_checked} requests"
        return (
            f"lossless: {q.greedy_tokens} of {q.greedy_tokens} greedy tokens identical{against} "
            f"({q.greedy_checked} requests)"
        )
    if q.status == QualityStatus.NOT_LOSSLESS:
        if q.divergence_token is None:
            return f"not lossless: greedy token ids differ{against}"
        return (
            f"not lossless: first divergence at token {q.divergence_token} of request "
            f"{q.divergence_request} ({q.divergence_label}){against}; {q.greedy_same} of "
            f"{q.greedy_tokens} tokens identical up to each request's divergence, "
            f"{q.greedy_differing} of {q.greedy_checked} requests differ"
        )
    return f"unchecked: {q.note or 'greedy token ids not compared'}"
