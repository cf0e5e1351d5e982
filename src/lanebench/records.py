"""Internal records of a run: what was asked, what came back, every raw sample.

These are plain dataclasses (no I/O). ``to_dict`` gives the JSON shape written by
``--json`` and kept by the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

from lanebench.busy.records import BusyRecord, LoadRecord
from lanebench.lanes import LaneSpec

SampleKind = Literal["warmup", "single", "aggregate"]


class TokenCount(StrEnum):
    """How a stream's generated tokens were counted, chunk by chunk (best first)."""

    RUNNING = "running"  # the server's running count on each chunk (tokens_predicted, usage, timings)
    IDS = "ids"  # the token ids each chunk carried
    LOGPROBS = "logprobs"  # one logprob entry per token
    CHUNKS = "chunks"  # nothing in the stream said: one token per chunk with text


class LaneStatus(StrEnum):
    OK = "ok"
    FLAGGED = "flagged"  # measured, with something a reader must know (see ``flags``)
    FAILED = "failed"  # could not be measured (see ``error`` and ``log_tail``)


class RunStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # finished, and at least one lane failed
    INTERRUPTED = "interrupted"


def is_busy(rec: RequestRecord | AggregateRecord) -> bool:
    """Whether the window of a request or batch was measured while the machine was busy."""
    return rec.load is not None and rec.load.busy


@dataclass(slots=True)
class RequestRecord:
    """One completion request as the client saw it, plus the engine's own ``timings``.

    Times are seconds; ``t_start`` is wall-clock (epoch) for ordering, durations come from a
    monotonic clock. A failed request is data: ``ok`` is False and ``error`` says why.

    ``stream_tokens`` counts generated tokens as the stream carried them (``token_count`` says
    how: a server may send several tokens in one chunk), ``stream_chunks`` the chunks that
    carried any output, ``first_tokens`` the tokens of the first read that carried any (they
    arrived at the time to first token). The engine's own count is ``timings["predicted_n"]``.
    """

    kind: SampleKind
    rep: int
    n_in: int
    n_out: int
    ok: bool = True
    error: str | None = None
    t_start: float = 0.0
    ttft_s: float | None = None
    wall_s: float | None = None
    stream_tokens: int = 0
    decode_stream_s: float | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    content_sha: str | None = None
    stream_index: int = 0
    tokens_sha: str | None = None  # sha256 of the generated token ids, when the engine streams them
    stream_chunks: int = 0
    first_tokens: int | None = None  # None: a record from before tokens were told from chunks
    token_count: str | None = None  # a TokenCount value
    # the generated token ids of a sequential request (warm-up, single), for the greedy check of
    # speculative lanes; None for concurrent requests and engines that stream no ids
    token_ids: list[int] | None = None
    load: LoadRecord | None = None  # what else ran during this request (None: not measured)

    @property
    def draft_n(self) -> int:
        return int(self.timings.get("draft_n", 0) or 0)

    @property
    def draft_n_accepted(self) -> int:
        return int(self.timings.get("draft_n_accepted", 0) or 0)


@dataclass(slots=True)
class AggregateRecord:
    """One batch of N concurrent jobs: generated tokens over the batch's wall time."""

    rep: int
    streams: int
    wall_s: float
    tokens: int
    ok: bool = True
    error: str | None = None
    load: LoadRecord | None = None  # what else ran during this batch (None: not measured)

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.wall_s if self.ok and self.wall_s > 0 else None


@dataclass(slots=True)
class Stat:
    """Median with spread over repetitions; ``n`` samples went in."""

    median: float
    min: float
    max: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``d`` that ``cls`` has fields for (a newer or older writer may add some)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def request_from_dict(d: dict[str, Any]) -> RequestRecord:
    """A request from its ``asdict`` form (JSON, the store)."""
    known = _known(RequestRecord, d)
    known["load"] = LoadRecord.from_dict(known.get("load"))
    return RequestRecord(**known)


def aggregate_from_dict(d: dict[str, Any]) -> AggregateRecord:
    known = _known(AggregateRecord, d)
    known["load"] = LoadRecord.from_dict(known.get("load"))
    return AggregateRecord(**known)


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
class QualityRecord:
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d

    @property
    def speculative(self) -> bool:
        """A speculative lane's verdict (lossless, not lossless, unchecked)."""
        return self.status in SPECULATIVE

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityRecord:
        """The record from its ``to_dict`` form. Records of speculative lanes written before
        schema 6 carried their target's figures (a KLD of 0.0 they never measured): they are
        read as a verdict only, from their greedy check."""
        known = _known(cls, d)
        known["status"] = QualityStatus(known.get("status") or "unavailable")
        rec = cls(**known)
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


@dataclass(slots=True)
class MemoryRecord:
    """What a lane's server took, in MiB: the server log's own breakdown (main model's weights,
    KV, compute and output buffers; ``draft`` = every buffer of the draft model or head), the
    process tree's peak resident memory sampled during the job and the kernel's high-water mark,
    GPU memory per nvidia-smi/rocm-smi, and the estimate made before start.

    ``peak_rss``/``hwm`` sum every process group of the lane (``groups``: llama-server and any
    local RPC servers); ``peak_vram`` is the peak over samples of the lane's processes' GPU memory
    summed over GPUs (``vram_tool`` names the tool). ``devices``: one dict per device the log
    names (keys ``lanebench.memory.devices.DEVICE_KEYS``: weights, kv, compute, draft,
    weights_share, peak_vram, vram_total, gpu; host buffers as one ``host`` entry)."""

    ctx: int = 0
    slots: int = 0
    weights: float | None = None
    kv: float | None = None
    compute: float | None = None
    draft: float | None = None
    log_host: float | None = None  # of the log's buffers, those in host memory
    peak_rss: float | None = None
    hwm: float | None = None
    peak_vram: float | None = None
    estimate: float | None = None
    notes: list[str] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    vram_tool: str | None = None
    groups: int | None = None  # process groups sampled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryRecord:
        return cls(**_known(cls, d))


@dataclass(slots=True)
class LaneResult:
    """Everything measured for one lane (or why it could not be)."""

    name: str
    lane: LaneSpec
    status: LaneStatus = LaneStatus.OK
    argv: list[str] = field(default_factory=list)
    load_s: float | None = None
    samples: list[RequestRecord] = field(default_factory=list)
    aggregates: list[AggregateRecord] = field(default_factory=list)
    metrics_delta: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Stat] = field(default_factory=dict)
    per_position: list[float] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    log_tail: str = ""
    log_path: str | None = None
    quality: QualityRecord | None = None
    baseline: dict[str, Any] | None = None  # the kernel view: engines.llamabench.BaselineRecord.to_dict()
    memory: MemoryRecord | None = None
    # where the model ran: split, devices, each RPC endpoint's probe (orchestration.placement_step)
    placement: dict[str, Any] | None = None
    # the standard job's request as sent (prompt left out): path, body, and notes on what the
    # server refused (engines.base.Engine.request_notes)
    request: dict[str, Any] | None = None
    # the attribution experiment (run --attribute): attribution.AttributionRecord.to_dict()
    attribution: dict[str, Any] | None = None
    busy: BusyRecord | None = None  # figures measured while the machine was busy (lanebench.busy)

    def measured_singles(self) -> list[RequestRecord]:
        """The successful single requests the figures come from: the quiet ones when there are
        any, else every one (then the figures are marked busy in ``busy``). Never a mix."""
        ok = [r for r in self.samples if r.kind == "single" and r.ok]
        quiet = [r for r in ok if not is_busy(r)]
        return quiet or ok

    def measured_batches(self) -> list[AggregateRecord]:
        """The successful N-slot batches the aggregate comes from, chosen like the singles."""
        ok = [a for a in self.aggregates if a.ok]
        quiet = [a for a in ok if not is_busy(a)]
        return quiet or ok

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["lane"] = self.lane.model_dump(mode="json")
        d["status"] = str(self.status)
        d["argv"], d["flags"], d["per_position"] = list(self.argv), list(self.flags), list(self.per_position)
        d["metrics_delta"] = dict(self.metrics_delta)
        d["samples"] = [asdict(s) for s in self.samples]
        d["aggregates"] = [asdict(a) for a in self.aggregates]
        d["summary"] = {k: v.to_dict() for k, v in self.summary.items()}
        d["quality"] = self.quality.to_dict() if self.quality else None
        d["memory"] = self.memory.to_dict() if self.memory else None
        d["baseline"] = dict(self.baseline) if self.baseline else None
        d["placement"] = dict(self.placement) if self.placement else None
        d["request"] = dict(self.request) if self.request else None
        d["attribution"] = dict(self.attribution) if self.attribution else None
        d["busy"] = self.busy.to_dict() if self.busy else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LaneResult:
        """A result from its ``to_dict`` form (a JSON file, the store)."""
        return cls(
            name=str(d["name"]),
            lane=LaneSpec.model_validate(d.get("lane") or {"name": d["name"]}),
            status=LaneStatus(d.get("status") or "ok"),
            argv=list(d.get("argv") or []),
            load_s=d.get("load_s"),
            samples=[request_from_dict(s) for s in d.get("samples") or []],
            aggregates=[aggregate_from_dict(a) for a in d.get("aggregates") or []],
            metrics_delta=dict(d.get("metrics_delta") or {}),
            summary={k: Stat(**v) for k, v in (d.get("summary") or {}).items() if v},
            per_position=list(d.get("per_position") or []),
            flags=list(d.get("flags") or []),
            error=d.get("error"),
            log_tail=d.get("log_tail") or "",
            log_path=d.get("log_path"),
            quality=QualityRecord.from_dict(d["quality"]) if isinstance(d.get("quality"), dict) else None,
            baseline=d["baseline"] if isinstance(d.get("baseline"), dict) else None,
            memory=MemoryRecord.from_dict(d["memory"]) if isinstance(d.get("memory"), dict) else None,
            placement=d["placement"] if isinstance(d.get("placement"), dict) else None,
            request=d["request"] if isinstance(d.get("request"), dict) else None,
            attribution=d["attribution"] if isinstance(d.get("attribution"), dict) else None,
            busy=BusyRecord.from_dict(d.get("busy")),
        )


@dataclass(slots=True)
class JobSpec:
    """The standard job: prompt and output sizes, repetitions, concurrency."""

    n_in: int = 1150
    n_out: int = 2000
    reps: int = 3
    warmup: int = 1
    aggregate: int = 2
    seed: int = 42
    target_ci: float | None = None  # stop adding reps once the 95% CI of median decode is within this share
    max_reps: int = 20
    remeasure: int | None = None  # extra reps (and batches) at most to replace busy ones; None: ``reps``

    @property
    def remeasure_budget(self) -> int:
        """Extra single requests (and, separately, N-slot batches) a lane may take to replace
        ones measured while the machine was busy."""
        return self.reps if self.remeasure is None else self.remeasure


@dataclass(slots=True)
class RunResults:
    """A finished run as the analysis modules read it: its job and its lanes, typed."""

    job: JobSpec
    lanes: list[LaneResult]


def results_from_document(doc: Any, source: str) -> RunResults:
    """A run document (``lanebench run --json``) as typed results; ``ValueError`` naming
    ``source`` and the lane when it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("lanes"), list):
        raise ValueError(
            f"{source}: not a run document (no 'lanes' list); write one with lanebench run --json"
        )
    run: Any = doc.get("run")
    job_data: Any = run.get("job") if isinstance(run, dict) else None
    if not isinstance(job_data, dict):
        job_data = {}
    known = {f.name for f in fields(JobSpec)}
    for key in ("n_in", "n_out", "reps", "warmup", "aggregate"):
        value = job_data.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{source}: run.job.{key}: expected a non-negative integer, got {value!r}"[:300])
    try:
        job = JobSpec(**{k: v for k, v in job_data.items() if k in known})
    except TypeError as exc:
        raise ValueError(f"{source}: run.job: {exc}") from None
    lanes = []
    for i, lane in enumerate(doc["lanes"]):
        try:
            lanes.append(LaneResult.from_dict(lane))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            first = str(exc).splitlines()[0][:200]
            raise ValueError(f"{source}: lane #{i + 1}: not a lanebench lane result ({first})") from None
    return RunResults(job, lanes)
