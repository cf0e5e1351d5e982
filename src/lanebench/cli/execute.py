"""What ``run``, ``sweep`` and ``tune`` share on the command line: turning options into a job and
run options, showing the plan, a progress bar, the seed's tables. The work itself is
``orchestration.run_lanes``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from lanebench.busy.cpu import describe
from lanebench.busy.meter import default_threads, machine_load
from lanebench.cli.common import console, err_console
from lanebench.cli.options import MAX_AGGREGATE
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.models import cache_dir
from lanebench.engines.llamacpp.dialect import Dialect
from lanebench.errors import BadInput, Interrupted
from lanebench.orchestration import RunOptions, RunOutcome, RunPlan, plan_run, run_lanes
from lanebench.orchestration.attribute_step import experiment_job, variant_plans
from lanebench.orchestration.pipeline import ResultStore
from lanebench.orchestration.plan import requests_per_lane
from lanebench.quality.assess import QualityOutcome
from lanebench.records.lane import LaneResult
from lanebench.records.run import RunInfo
from lanebench.report.data import ReportData, RunData
from lanebench.report.render import lane_tables
from lanebench.report.tables import to_markdown, to_rich
from lanebench.store.sinks import JsonSink, Sink, write_atomic

EXIT_LANE_FAILED = 4


@dataclass(slots=True)
class Outputs:
    json_out: Path | None = None
    markdown: Path | None = None
    db: str | None = None
    use_db: bool = True
    plots: Path | None = None  # the run's plots as PNG (report.plots), the envelope's among them


def check_job(job: JobSpec) -> JobSpec:
    limits = (
        ("--n-in", job.n_in, 1),
        ("--n-out", job.n_out, 1),
        ("--reps", job.reps, 1),
        ("--warmup", job.warmup, 0),
        ("--aggregate", job.aggregate, 0),
        ("--max-reps", job.max_reps, job.reps),
        ("--remeasure-busy", job.remeasure_budget, 0),
    )
    for flag, value, low in limits:
        if value < low:
            raise BadInput(f"{flag}: expected an integer >= {low}, got {value}")
    if job.aggregate > MAX_AGGREGATE:
        raise BadInput(f"--aggregate: expected at most {MAX_AGGREGATE} concurrent jobs, got {job.aggregate}")
    if job.target_ci is not None and not 0 < job.target_ci < 1:
        raise BadInput(f"--target-ci: expected a share such as 2% or 0.02, got {job.target_ci}")
    return job


def parse_share(text: str | None) -> float | None:
    """``'2%'`` or ``'0.02'`` → 0.02."""
    if text is None:
        return None
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise BadInput(f"--target-ci: expected a share such as 2% or 0.02, got {text!r}") from None


def make_job(
    base: JobSpec,
    n_in: int | None,
    n_out: int | None,
    reps: int,
    warmup: int,
    aggregate: int,
    target_ci: str | None = None,
    max_reps: int = 20,
    remeasure: int | None = None,
    depth: str | None = None,
    concurrency: str | None = None,
    budget_min: float | None = None,
) -> JobSpec:
    """The job the options ask for, over ``base`` (the default or the seed's full job), checked."""
    job = JobSpec(
        n_in=n_in if n_in is not None else base.n_in,
        n_out=n_out if n_out is not None else base.n_out,
        reps=reps,
        warmup=warmup,
        aggregate=aggregate,
        target_ci=parse_share(target_ci),
        max_reps=max_reps,
        remeasure=remeasure,
        depths=parse_levels("--depth", depth, 0),
        concurrency=parse_levels("--concurrency", concurrency, 1),
        budget_s=budget_min * 60 if budget_min is not None else None,
    )
    if budget_min is not None and budget_min <= 0:
        raise BadInput(f"--budget: expected minutes > 0, got {budget_min:g}")
    return check_job(job)


def parse_levels(flag: str, text: str | None, low: int) -> list[int]:
    """``'0,4096,32768'`` → [0, 4096, 32768]; one line naming the flag for anything else."""
    if text is None:
        return []
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInput(f"{flag}: expected integers separated by commas (e.g. 0,4096), got {text!r}") from None
    if not values or any(v < low for v in values):
        raise BadInput(f"{flag}: expected integers >= {low} separated by commas, got {text!r}")
    return sorted(set(values))


def make_options(
    job: JobSpec,
    *,
    server_bin: Path | None,
    out_dir: Path | None,
    load_timeout: float = 300.0,
    no_check: bool = False,
    no_fit_check: bool = False,
    no_reuse: bool = False,
    lanes_file: Path | None = None,
    quality: bool = False,
    reference: str | None = None,
    quality_tokens: int = 4096,
    baseline: bool = False,
    attribute: bool = False,
    attribute_reps: int = 5,
) -> RunOptions:
    if quality_tokens < 1:
        raise BadInput(f"--quality-tokens: expected a positive number of tokens, got {quality_tokens}")
    if attribute_reps < 1:
        raise BadInput(f"--attribute-reps: expected an integer >= 1, got {attribute_reps}")
    return RunOptions(
        job=job,
        out_dir=out_dir or cache_dir() / "logs",
        server_bin=server_bin,
        load_timeout_s=load_timeout,
        check_drafts=not no_check,
        fit_check=not no_fit_check,
        reuse=not no_reuse,
        lanes_file=lanes_file,
        quality=quality,
        reference=reference,
        quality_tokens=quality_tokens,
        baseline=baseline,
        attribute=attribute,
        attribute_reps=attribute_reps,
    )


def print_plan(rp: RunPlan, job: JobSpec) -> None:
    n = len(rp.plans)
    console.print(
        f"[bold]plan[/]: {n} lane(s) on at most {n} server start(s) "
        f"({len(rp.groups)} if the build takes per-request speculative fields); "
        f"{requests_per_lane(job)} requests per lane ({job.warmup} warm-up, {job.reps} single"
        + (f" up to {job.max_reps} for a {100 * job.target_ci:g}% CI" if job.target_ci else "")
        + f", {job.reps} x {job.aggregate} concurrent), {job.n_in} tokens in / {job.n_out} out each"
        + (
            f"; up to {job.remeasure_budget} more of each kind to replace ones measured on a busy machine"
            if job.remeasure_budget
            else ""
        )
    )
    for i, g in enumerate(rp.groups, 1):
        for p in g:
            what = " ".join(p.argv_preview) if p.argv_preview else f"attach to {p.build} ({p.engine.name})"
            console.print(f"- server {i}: {p.lane.name}: {what}", highlight=False, markup=False)
            for note in p.fit_notes:
                console.print(f"  {note}", highlight=False, markup=False)
    if rp.skipped:
        console.print(f"already measured: {', '.join(sorted(rp.skipped))}", highlight=False)


def print_attribution_plan(rp: RunPlan, opts: RunOptions) -> None:
    """``--attribute``: per lane, the servers of its experiment and what each switches off."""
    reps = experiment_job(opts)
    for p in rp.plans:
        if not isinstance(p.dialect, Dialect):
            console.print(f"- attribution: {p.lane.name}: none (engine {p.engine.name})", highlight=False)
            continue
        variants, skipped = variant_plans(p)
        changes = [" ".join(s.change(p.dialect)) for s, _ in variants]
        console.print(
            f"- attribution: {p.lane.name}: {len(variants) + 2 if variants else 0} server(s) of "
            f"{reps.warmup} + {reps.reps} requests: control, "
            + ", ".join(changes)
            + ", control"
            + "".join(f"; not {name}: {why}" for name, why in skipped),
            highlight=False,
            markup=False,
        )


def render(job: JobSpec, results: Sequence[LaneResult], markdown: Path | None) -> str:
    tables = lane_tables(results, job)
    for t in tables:
        console.print(to_rich(t))
    md = "\n".join(to_markdown(t) for t in tables)
    if markdown is not None:
        write_atomic(markdown, md)
    return md


def save_run_plots(outcome: RunOutcome, directory: Path) -> None:
    """``--plots``: the run's plots as a report draws them (the envelope's among them)."""
    from lanebench.report.plots import save_plots  # matplotlib is imported only when plots are asked for

    paths = save_plots(ReportData(runs=[RunData(outcome.run, outcome.results)]), directory)
    err_console.print(f"wrote {len(paths)} plot(s) to {directory}", highlight=False, markup=False)


class RichProgress:
    """The pipeline's progress, as one rich bar over every request of the run."""

    def __init__(self, bar: Bar, total_lanes: int, per_lane: int) -> None:
        self.bar, self.per_lane = bar, per_lane
        self.task = bar.add_task("starting", total=total_lanes * per_lane)
        self.finished = 0
        self.run_id: str | None = None

    def run_started(self, run: RunInfo, skipped: int) -> None:
        self.run_id = run.run_id
        note = f" (resumed; skipping {skipped} lane(s))" if skipped else ""
        err_console.print(f"run {run.run_id}{note}", highlight=False, markup=False)

    def loading(self, lane: str) -> None:
        self.bar.update(self.task, description=f"{lane}: loading")

    def requests(self, lane: str, done: int, total: int) -> None:
        self.bar.update(
            self.task,
            completed=self.finished * self.per_lane + min(done, self.per_lane),
            description=f"{lane}: {done}/{total}",
        )

    def lane_done(self, result: LaneResult) -> None:
        self.finished += 1
        self.bar.update(self.task, completed=self.finished * self.per_lane)


def measure_with_progress(
    lanes: Sequence[LaneSpec],
    opts: RunOptions,
    sinks: Sequence[Sink] = (),
    *,
    store: ResultStore | None = None,
    resume: str | None = None,
    planned: RunPlan | None = None,
) -> RunOutcome:
    """``run_lanes`` under a progress bar on stderr; Ctrl-C names the run to resume."""
    rp = planned or plan_run(lanes, opts, store, resume)

    def say(text: str) -> None:
        if progress is not None:
            progress.bar.update(progress.task, description=text)
        err_console.print(text, highlight=False, markup=False)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    progress: RichProgress | None = None
    try:
        with Bar(*columns, console=err_console) as bar:
            progress = RichProgress(bar, len(rp.plans), requests_per_lane(opts.job))
            return run_lanes(
                lanes, opts, sinks, store=store, resume=resume, progress=progress, planned=rp, say=say
            )
    except (KeyboardInterrupt, Interrupted):
        run_id = progress.run_id if progress else None
        raise Interrupted(
            f"interrupted; servers stopped; what run {run_id} measured is kept"
            + (f" (resume with --resume {run_id})" if store is not None and run_id else "")
        ) from None


def servers_line(outcome: RunOutcome) -> str:
    """How many servers measured how many lanes, and whether sharing one was possible."""
    line = f"servers started: {outcome.servers} for {len(outcome.plan.plans)} lane(s)"
    known = set(outcome.per_request.values())
    if known:
        line += " (per-request speculative fields: " + ("honoured" if known == {True} else "ignored") + ")"
    return line


def quality_line(q: QualityOutcome) -> str:
    """How many tokens quality scored, what cut the slice short, and what it cost."""
    assert q.slice is not None
    limited = f" (limited by {q.slice.limited_by})" if q.slice.limited_by else ""
    return (
        f"quality: {q.slice.tokens:,} tokens scored against {q.reference!r}{limited}; "
        f"{q.tool_runs} llama-perplexity run(s), {q.seconds:.0f} s"
    )


def busy_warning(rp: RunPlan, job: JobSpec, seconds: float = 1.0) -> str | None:
    """One line when other processes keep the machine busy now (watched for ``seconds``), for
    the lanes lanebench starts here; None when quiet, or when it starts none."""
    local = [p for p in rp.plans if p.engine.launches]
    if not local:
        return None
    load = machine_load(seconds, max(p.lane.threads or default_threads() for p in local))
    if load is None or not load.busy:
        return None
    again = job.remeasure_budget
    return (
        f"warning: the machine is busy: {describe(load)} over {load.seconds:.1f} s; llama.cpp's threads "
        f"spin, so figures measured now collapse: busy repetitions are re-measured (at most {again} "
        "extra per lane) and figures that had no quiet one are marked [busy]"
    )


def execute(
    lanes: Sequence[LaneSpec],
    opts: RunOptions,
    out: Outputs,
    *,
    resume: str | None = None,
    dry_run: bool = False,
) -> RunOutcome | None:
    """Plan, measure and report lanes; None for a dry run."""
    store = None
    if out.use_db and (resume or not dry_run):
        from lanebench.store import open_store

        store = open_store(out.db)
    rp = plan_run(lanes, opts, store, resume)
    if dry_run:
        print_plan(rp, opts.job)
        if opts.attribute:
            print_attribution_plan(rp, opts)
        return None
    sinks: list[Sink] = [JsonSink(out.json_out)] if out.json_out else []
    warning = busy_warning(rp, opts.job)
    if warning:
        err_console.print(warning, highlight=False, markup=False, style="yellow", soft_wrap=True)
    outcome = measure_with_progress(lanes, opts, sinks, store=store, resume=resume, planned=rp)
    err_console.print(servers_line(outcome), highlight=False, markup=False)
    if outcome.quality is not None and outcome.quality.slice is not None:
        err_console.print(quality_line(outcome.quality), highlight=False, markup=False)
    render(outcome.run.job, outcome.results, out.markdown)
    if out.plots is not None:
        save_run_plots(outcome, out.plots)
    for r in outcome.results:
        if r.status != "ok":
            msg = r.error or "; ".join(r.flags)
            err_console.print(f"lane {r.name!r}: {r.status}: {msg}", markup=False, highlight=False)
    return outcome
