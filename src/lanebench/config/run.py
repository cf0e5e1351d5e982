"""The run configuration: one validated object for what ``run``, ``sweep``, ``tune`` (and, where
they apply, ``quality`` and ``advise``) measure, and where the results go.

Each user-facing field carries a ``Flag``: the CLI builds every measuring command's options from
these fields (``cli.runflags``), so a new option is one field here and every command has it.
Each value is validated once, here; a bad one is one line naming its flag (``from_flags``).
Orchestration reads the config as it is: ``config.job`` is the job every lane is measured with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lanebench.config.defaults import DEFAULT_JOB, FULL_JOB
from lanebench.config.job import JobSpec
from lanebench.config.models import cache_dir
from lanebench.errors import BadInput

MAX_AGGREGATE = 256
JOB, MEASURING, OUTPUT = "Job", "Measuring", "Output"  # the help panels


@dataclass(frozen=True, slots=True)
class Flag:
    """How a field appears on the command line. ``invert``: the flag (``--no-check``) turns the
    field off; ``pair``: a ``--x/--no-x`` switch whose default is left to the config."""

    name: str
    panel: str = MEASURING
    invert: bool = False
    pair: bool = False
    envvar: str | None = None
    cli_type: Any = None  # what the command line reads, when it differs from the field's type


def _default_logs() -> Path:
    return cache_dir() / "logs"


def _at_least(low: int, value: int | None) -> int | None:
    if value is not None and value < low:
        raise ValueError(f"expected an integer >= {low}, got {value}")
    return value


class RunConfig(BaseModel):
    """How to measure lanes: the job, the measuring options and the outputs of one run."""

    model_config = ConfigDict(extra="forbid")

    # the job
    n_in: Annotated[int | None, Flag("--n-in", JOB)] = Field(
        None, description="Prompt tokens per request (default 1150)."
    )
    n_out: Annotated[int | None, Flag("--n-out", JOB)] = Field(
        None, description="Generated tokens per request (default 200; --full 2000)."
    )
    reps: Annotated[int, Flag("--reps", JOB)] = Field(
        3, description="Measured repetitions after the warm-up."
    )
    warmup: Annotated[int, Flag("--warmup", JOB)] = Field(1, description="Warm-up requests, not counted.")
    aggregate: Annotated[int, Flag("--aggregate", JOB)] = Field(
        2,
        description=f"Concurrent jobs for the N-slot aggregate (0 = skip; at most {MAX_AGGREGATE}).",
    )
    full: Annotated[bool, Flag("--full", JOB)] = Field(
        False, description="The seed report's job: 1150 in / 2000 out (and --baseline)."
    )
    target_ci: Annotated[float | None, Flag("--target-ci", JOB, cli_type=str | None)] = Field(
        None,
        description="Repeat until the 95% CI of median decode is within this share (e.g. 2% or 0.02).",
    )
    max_reps: Annotated[int, Flag("--max-reps", JOB)] = Field(
        20, description="Most repetitions with --target-ci."
    )
    remeasure_busy: Annotated[int | None, Flag("--remeasure-busy", JOB)] = Field(
        None,
        description="Most extra repetitions (and, apart, N-slot batches) a lane takes to replace ones "
        "measured while other processes kept the machine busy; default: --reps; 0: mark them, never "
        "re-measure.",
    )

    depth: Annotated[list[int], Flag("--depth", JOB, cli_type=str | None)] = Field(
        default_factory=list,
        description="Map the envelope at these context depths: tokens of conversation the server "
        "already holds before each request, e.g. 0,4096,32768.",
    )
    concurrency: Annotated[list[int], Flag("--concurrency", JOB, cli_type=str | None)] = Field(
        default_factory=list,
        description="Map the envelope at these numbers of streams at once, e.g. 1,2,4,8 (slots follow "
        "the widest unless the lane sets them).",
    )
    budget: Annotated[float | None, Flag("--budget", JOB)] = Field(
        None,
        description="Minutes the envelope's measuring may take; each cell's repetitions are chosen to "
        "fit (at least 3, the fewest the noise rule can judge; at most --max-reps).",
    )

    # measuring
    server_bin: Annotated[Path | None, Flag("--server-bin", envvar="LANEBENCH_SERVER_BIN")] = Field(
        None, description="llama-server for lanes that name none."
    )
    out_dir: Annotated[Path, Flag("--out-dir", cli_type=Path | None)] = Field(
        default_factory=_default_logs, description="Server logs go here (default: the user cache dir)."
    )
    load_timeout_s: Annotated[float, Flag("--load-timeout")] = Field(
        300.0, description="Seconds to wait for a server to listen."
    )
    check_drafts: Annotated[bool, Flag("--no-check", invert=True)] = Field(
        True, description="Skip the draft/head compatibility check before starting."
    )
    fit_check: Annotated[bool, Flag("--no-fit-check", invert=True)] = Field(
        True,
        description="Skip the memory check before starting (a lane whose GGUF estimate, placed per "
        "device as its server would, exceeds a device's free memory or RAM is refused).",
    )
    reuse: Annotated[bool, Flag("--no-reuse", invert=True)] = Field(
        True, description="Start a server for every lane, even when lanes could share one."
    )
    baseline: Annotated[bool, Flag("--baseline", pair=True)] = Field(
        False,
        description="Run the build's llama-bench with every lane's settings (the kernel view) and show "
        "where the time goes between kernels, engine and client (default: on with --full).",
    )
    attribute: Annotated[bool, Flag("--attribute")] = Field(
        False,
        description="After each llama.cpp lane, re-run a few requests of its job on fresh servers with "
        "one known suspect switched off at a time (prompt cache, idle-slot saving, context checkpoints, "
        "cache reuse, the sampler chain), plus the lane as it runs before and after; a cause is named "
        "in 'Where the Time Goes' only when its switch moved the figure beyond the noise. Not implied "
        "by --baseline or --full (it costs a server start and the requests per suspect).",
    )
    attribute_reps: Annotated[int, Flag("--attribute-reps")] = Field(
        5,
        description="Requests per server of --attribute (after one warm-up); a cause needs at least 3 "
        "on each side, and with 5 a chance separation of the ranges has odds 2 in 3,003.",
    )
    quality: Annotated[bool, Flag("--quality")] = Field(
        False,
        description="Also score every lane against the reference lane with the build's llama-perplexity "
        "(KLD, same top-1, PPL); see docs/quality.md.",
    )
    reference: Annotated[str | None, Flag("--reference")] = Field(
        None,
        description="The lane others are compared with (default: the lane marked reference = true, "
        "else the widest weights with F16 KV).",
    )
    quality_tokens: Annotated[int, Flag("--quality-tokens")] = Field(
        4096,
        description="Tokens to score for quality (fewer if free disk or memory is short; the base file "
        "takes about 0.5 MB a token for a 262,144-token vocabulary).",
    )

    # outputs
    json_out: Annotated[Path | None, Flag("--json", OUTPUT)] = Field(
        None, description="Write everything, raw samples too, to this JSON file, as measured."
    )
    db: Annotated[str | None, Flag("--db", OUTPUT, envvar="LANEBENCH_DB")] = Field(
        None, description="Results database: SQLite path or postgresql://... URL."
    )
    use_db: Annotated[bool, Flag("--no-db", OUTPUT, invert=True)] = Field(
        True, description="Do not record this run in the results database."
    )

    # set by the command or by code, never a flag
    lanes_file: Path | None = Field(
        None, description="The lanes TOML the lanes came from, kept with the run."
    )
    request_timeout_s: float = Field(3600.0, description="Seconds one request may take before it fails.")
    quality_dir: Path | None = Field(
        None, description="Where quality's base file goes (default: OUT_DIR/quality)."
    )
    baseline_reps: int = Field(3, description="llama-bench repetitions of the kernel view (-r).")

    _job: JobSpec = PrivateAttr(default_factory=JobSpec)

    @field_validator("n_in", "n_out", "reps", "attribute_reps")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        return _at_least(1, v)

    @field_validator("warmup", "remeasure_busy")
    @classmethod
    def _not_negative(cls, v: int | None) -> int | None:
        return _at_least(0, v)

    @field_validator("aggregate")
    @classmethod
    def _aggregate(cls, v: int) -> int:
        _at_least(0, v)
        if v > MAX_AGGREGATE:
            raise ValueError(f"expected at most {MAX_AGGREGATE} concurrent jobs, got {v}")
        return v

    @field_validator("max_reps")
    @classmethod
    def _max_reps(cls, v: int, info: ValidationInfo) -> int:
        _at_least(info.data.get("reps", 1), v)
        return v

    @field_validator("target_ci", mode="before")
    @classmethod
    def _share(cls, v: Any) -> Any:
        """``'2%'`` or ``'0.02'`` → 0.02, a share strictly between 0 and 1."""
        if v is None:
            return None
        try:
            share = float(v[:-1]) / 100 if isinstance(v, str) and v.endswith("%") else float(v)
        except (TypeError, ValueError):
            raise ValueError(f"expected a share such as 2% or 0.02, got {v!r}") from None
        if not 0 < share < 1:
            raise ValueError(f"expected a share such as 2% or 0.02, got {share}")
        return share

    @field_validator("depth", "concurrency", mode="before")
    @classmethod
    def _levels(cls, v: Any, info: ValidationInfo) -> list[int]:
        """``'0,4096,32768'`` (or a list) → sorted distinct integers, each at least the axis' low."""
        low = 0 if info.field_name == "depth" else 1
        if v is None:
            return []
        try:
            values = [int(x) for x in (v.split(",") if isinstance(v, str) else v) if str(x).strip()]
        except (TypeError, ValueError):
            raise ValueError(f"expected integers separated by commas (e.g. 0,4096), got {v!r}") from None
        if (isinstance(v, str) and not values) or any(x < low for x in values):
            raise ValueError(f"expected integers >= {low} separated by commas, got {v!r}")
        return sorted(set(values))

    @field_validator("budget")
    @classmethod
    def _minutes(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError(f"expected minutes > 0, got {v:g}")
        return v

    @field_validator("load_timeout_s")
    @classmethod
    def _seconds(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"expected a positive number of seconds, got {v}")
        return v

    @field_validator("quality_tokens")
    @classmethod
    def _tokens(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"expected a positive number of tokens, got {v}")
        return v

    @model_validator(mode="after")
    def _resolve_job(self) -> Self:
        if "baseline" not in self.model_fields_set:  # --baseline defaults to --full (still unset:
            object.__setattr__(self, "baseline", self.full)  # a lanes file's [job] may set full)
        base = FULL_JOB if self.full else DEFAULT_JOB
        self._job = JobSpec(
            n_in=base.n_in if self.n_in is None else self.n_in,
            n_out=base.n_out if self.n_out is None else self.n_out,
            reps=self.reps,
            warmup=self.warmup,
            aggregate=self.aggregate,
            target_ci=self.target_ci,
            max_reps=self.max_reps,
            remeasure=self.remeasure_busy,
            depths=list(self.depth),
            concurrency=list(self.concurrency),
            budget_s=self.budget * 60 if self.budget is not None else None,
        )
        return self

    @property
    def job(self) -> JobSpec:
        """The job every lane is measured with (the flags over the default or the seed's full job)."""
        return self._job

    def with_job(self, job: JobSpec) -> RunConfig:
        """This config measuring ``job`` instead (a stored run's job on resume, a round of tune)."""
        fields = {
            "n_in": job.n_in,
            "n_out": job.n_out,
            "reps": job.reps,
            "warmup": job.warmup,
            "aggregate": job.aggregate,
            "target_ci": job.target_ci,
            "max_reps": job.max_reps,
            "remeasure_busy": job.remeasure,
            "depth": list(job.depths),
            "concurrency": list(job.concurrency),
            "budget": job.budget_s / 60 if job.budget_s is not None else None,
        }
        copy = self.model_copy(update=fields)
        copy._job = replace(job)
        return copy

    def under_file(self, table: Mapping[str, Any], source: str) -> RunConfig:
        """This config with a lanes file's ``[job]`` values for the job fields no flag set (a flag
        given on the command line wins); a bad value is one line naming the file and key."""
        if not table:
            return self
        given = {k: getattr(self, k) for k in self.model_fields_set}
        try:
            return type(self).model_validate({**table, **given})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "job"
            raise BadInput(
                f"{source}: [job]: key {key!r}: {err['msg'].removeprefix('Value error, ')}"
            ) from None

    @classmethod
    def flag_of(cls, name: str) -> Flag | None:
        """The flag of field ``name``; None for fields that are no flag."""
        return next((m for m in cls.model_fields[name].metadata if isinstance(m, Flag)), None)

    @classmethod
    def flags(cls) -> dict[str, Flag]:
        """Every field that is a flag, by field name, in the order of the model."""
        return {name: flag for name in cls.model_fields if (flag := cls.flag_of(name)) is not None}

    @classmethod
    def from_flags(cls, **values: Any) -> RunConfig:
        """Validate ``values`` (field name → value); a bad one is a BadInput naming its flag."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise BadInput(describe_error(exc)) from None


JOB_FIELDS = tuple(name for name, flag in RunConfig.flags().items() if flag.panel == JOB)  # [job]'s keys


def describe_error(exc: ValidationError) -> str:
    """The first problem of ``exc`` as one line: ``--flag: what was expected, got what``."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    flag = RunConfig.flag_of(name) if name in RunConfig.model_fields else None
    where = flag.name if flag else (name or "run configuration")
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"
