"""Quality for a run's lanes: one reference base file, one ``--kl-divergence`` run per distinct
way the tool reproduces a lane (``quality.reproduce``), a greedy verdict for speculative lanes.

Returns a ``QualityRecord`` per wanted lane; a lane that cannot be measured gets a record that
says why (never an exception), while a reference that cannot be measured raises
``QualityError`` (nothing can be compared without it). A pairing that would mean nothing raises
``BadInput`` before any tool runs (``reproduce.plan_scoring``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lanebench.gguf.reader import open_gguf
from lanebench.measure.workloads import corpus_text
from lanebench.quality.flags import HelpError, Options, read_options
from lanebench.quality.greedy import check_greedy, plain_partner, verdict_record
from lanebench.quality.parse import KldStats, ParseError, parse_base, parse_kld
from lanebench.quality.reproduce import plan_scoring, scored
from lanebench.quality.runner import (
    TOOL,
    BaseFile,
    QualityError,
    ToolLane,
    base_argv,
    find_perplexity,
    kld_argv,
    probe_tool,
    run_tool,
)
from lanebench.quality.select import QualityLane
from lanebench.quality.slicing import DEFAULT_CTX, Slice, SliceError, plan_slice
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.records.samples import RequestRecord
from lanebench.server.exitcause import mem_available_bytes

Say = Callable[[str], None]


@dataclass(slots=True)
class QualityOptions:
    """How much to score (``tokens``, in chunks of ``ctx``), where the base file goes, which
    lane is the reference (None: the default rule) and how long one tool run may take (s)."""

    work_dir: Path
    tokens: int = 4096
    ctx: int = DEFAULT_CTX
    reference: str | None = None
    timeout_s: float = 3600.0


@dataclass(slots=True)
class QualityOutcome:
    records: dict[str, QualityRecord] = field(default_factory=dict)
    reference: str | None = None
    slice: Slice | None = None
    tool_runs: int = 0
    seconds: float = 0.0


def _figures(rec: QualityRecord, st: KldStats) -> None:
    rec.ppl, rec.ppl_err, rec.ppl_base, rec.ppl_base_err = st.ppl, st.ppl_err, st.ppl_base, st.ppl_base_err
    rec.ppl_ratio, rec.ppl_ratio_err = st.ppl_ratio, st.ppl_ratio_err
    rec.kld_mean, rec.kld_err, rec.kld_p99, rec.kld_max = st.kld_mean, st.kld_err, st.kld_p99, st.kld_max
    rec.same_top1, rec.same_top1_err = st.same_top1, st.same_top1_err
    rec.rms_dp, rec.rms_dp_err = st.rms_dp, st.rms_dp_err


def free_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            return mem_available_bytes(f.read()) or (8 << 30)
    except OSError:
        return 8 << 30  # not Linux: assume a modest machine


def _slice(ref: QualityLane, opts: QualityOptions, n_vocab: int, corpus: str) -> Slice:
    assert ref.model is not None
    free_disk = shutil.disk_usage(opts.work_dir).free
    try:
        return plan_slice(
            opts.tokens,
            len(corpus),
            n_vocab,
            free_disk=free_disk,
            free_memory=free_memory(),
            model_bytes=os.path.getsize(ref.model),
            ctx=opts.ctx,
            where=str(opts.work_dir),
        )
    except SliceError as exc:
        raise QualityError(f"quality: {exc}") from None


class Assessor:
    """One run's quality measurements; ``say`` receives a line per tool run (progress)."""

    def __init__(self, lanes: Sequence[QualityLane], opts: QualityOptions, say: Say | None = None) -> None:
        self.lanes, self.opts, self.say = list(lanes), opts, say or (lambda _: None)
        self.out = QualityOutcome()
        self.tool_lanes: dict[str, ToolLane] = {}

    def _unmeasurable(self, q: QualityLane) -> QualityRecord | None:
        if q.spec.emulated:
            return QualityRecord(
                QualityStatus.EMULATED,
                note="output not the model's (synthetic acceptance): no quality figures",
            )
        if q.server_bin is None or q.model is None:
            why = q.unavailable or f"engine {q.spec.engine!r}: lanebench has no {TOOL} for this lane"
            return QualityRecord(QualityStatus.UNAVAILABLE, note=why)
        if q.drafting:
            return None  # a verdict from its greedy ids, which needs no tool
        if find_perplexity(q.server_bin) is None:
            return QualityRecord(
                QualityStatus.UNAVAILABLE, note=f"no {TOOL} beside {q.server_bin}: this build cannot score it"
            )
        return None

    def run(
        self, wanted: Sequence[str], samples: dict[str, list[RequestRecord]] | None = None
    ) -> QualityOutcome:
        """Records for the ``wanted`` lanes (names); ``samples`` are the run's requests, for the
        greedy check of speculative lanes. ``BadInput`` before any tool runs when a pairing
        with the reference would mean nothing."""
        by_name = {q.name: q for q in self.lanes}
        scoring = plan_scoring(self.lanes, wanted, self.opts.reference)
        self.tool_lanes = scoring.tool_lanes
        todo: dict[str, QualityLane] = {}
        drafting: list[QualityLane] = []
        for name in wanted:
            q = by_name[name]
            rec = self._unmeasurable(q)
            if rec is not None:
                self.out.records[name] = rec
            elif q.drafting:
                drafting.append(q)
            else:
                todo[name] = q
        self._greedy(drafting, samples or {})
        ref = scoring.reference
        if todo and ref is None:
            for name in todo:
                self.out.records[name] = QualityRecord(
                    QualityStatus.UNAVAILABLE,
                    note="no lane can be the reference (a llama.cpp lane without a draft)",
                )
        elif todo and ref is not None:
            if not scored(ref):
                raise QualityError(f"reference lane {ref.name!r}: no {TOOL} beside {ref.server_bin}")
            self.out.reference = ref.name
            self._measure(ref, todo)
        return self.out

    def _measure(self, ref: QualityLane, todo: dict[str, QualityLane]) -> None:
        assert ref.server_bin is not None and ref.model is not None
        ref_tool = find_perplexity(ref.server_bin)
        assert ref_tool is not None  # scored(ref)
        # lanes the tool runs alike share one run; the reference's own row comes from the base run
        groups: dict[str, list[QualityLane]] = {}
        for q in todo.values():
            groups.setdefault(self.tool_lanes[q.name].key(), []).append(q)
        corpus = corpus_text()
        n_vocab = open_gguf(ref.model).n_tokens
        with BaseFile(self.opts.work_dir) as bf:
            assert bf.folder is not None
            sl = _slice(ref, self.opts, n_vocab, corpus)
            self.out.slice = sl
            base = self._base(ref, ref_tool, bf, sl, corpus)
            for key, members in groups.items():
                others = [q for q in members if q.name != ref.name]
                if len(others) < len(members):
                    self.out.records[ref.name] = self._reference_record(ref, sl, base)
                if others:
                    self._group(ref, others, sl, bf.path, key)

    def _base(
        self, ref: QualityLane, tool: Path, bf: BaseFile, sl: Slice, corpus: str
    ) -> tuple[float, float | None, float]:
        """Run the reference with ``--kl-divergence-base``; (its perplexity, ±, seconds)."""
        assert bf.folder is not None
        text = bf.folder / "corpus.txt"
        text.write_text(corpus, encoding="utf-8")
        dialect = probe_tool(tool)
        self.say(f"quality: reference {ref.name!r}: scoring {sl.tokens} tokens ({sl.chunks} x {sl.ctx})")
        lane = self.tool_lanes[ref.name]
        argv = base_argv(tool, lane, dialect, text, sl, bf.partial)
        run = run_tool(argv, lane.env, self.opts.timeout_s)
        self.out.tool_runs += 1
        self.out.seconds += run.seconds
        try:
            chunks, ppl, ppl_err = parse_base(run.stdout, run.stderr)
        except ParseError as exc:
            raise QualityError(f"reference lane {ref.name!r}: {TOOL} failed: {exc}") from None
        bf.commit(sl.base_bytes)
        if chunks != sl.chunks:
            raise QualityError(f"reference lane {ref.name!r}: {TOOL} scored {chunks} chunks, not {sl.chunks}")
        return ppl, ppl_err, run.seconds

    def _reference_record(
        self, ref: QualityLane, sl: Slice, base: tuple[float, float | None, float]
    ) -> QualityRecord:
        """The reference's row: its perplexity; its KLD against itself is 0 by definition."""
        return QualityRecord(
            QualityStatus.REFERENCE, ref.name, sl.tokens, sl.ctx, ppl=base[0], ppl_err=base[1], kld_mean=0.0,
            fingerprint=self.tool_lanes[ref.name].key(), seconds=base[2],
        )  # fmt: skip

    def _group(self, ref: QualityLane, members: list[QualityLane], sl: Slice, base: Path, key: str) -> None:
        lead = members[0]
        assert lead.server_bin is not None
        tool = find_perplexity(lead.server_bin)
        assert tool is not None  # _unmeasurable checked it
        rec = QualityRecord(QualityStatus.MEASURED, ref.name, sl.tokens, sl.ctx, fingerprint=key)
        try:
            dialect = probe_tool(tool)
            self.say(f"quality: lane {lead.name!r} against {ref.name!r}")
            lane = self.tool_lanes[lead.name]
            run = run_tool(kld_argv(tool, lane, dialect, sl, base), lane.env, self.opts.timeout_s)
            self.out.tool_runs += 1
            self.out.seconds += run.seconds
            rec.seconds = run.seconds
            _figures(rec, parse_kld(run.stdout, run.stderr))
        except (QualityError, ParseError) as exc:
            rec = QualityRecord(
                QualityStatus.FAILED, ref.name, 0, sl.ctx, fingerprint=key, note=f"{TOOL}: {exc}"
            )
        for q in members:
            self.out.records[q.name] = QualityRecord.from_dict(rec.to_dict())

    def _greedy(self, drafting: list[QualityLane], samples: dict[str, list[RequestRecord]]) -> None:
        """A verdict for each speculative lane: its greedy ids against its plain partner's."""
        for q in drafting:
            partner, why = plain_partner(q, self.lanes, _options(q))
            if partner is None:
                self.out.records[q.name] = verdict_record(None, None, why)
            elif not samples.get(q.name) or not samples.get(partner.name):
                missing = q.name if not samples.get(q.name) else partner.name
                why = f"lane {missing!r} has no requests in this run (quality scored without speed)"
                self.out.records[q.name] = verdict_record(partner.name, None, why)
            else:
                check = check_greedy(samples[q.name], samples[partner.name])
                self.out.records[q.name] = verdict_record(partner.name, check)


def _options(q: QualityLane) -> Options | None:
    """The options of the lane's llama-server (None when they cannot be read)."""
    try:
        return read_options(q.server_bin) if q.server_bin is not None else None
    except HelpError:
        return None
