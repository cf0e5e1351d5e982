"""What ``run``, ``sweep`` and ``tune`` share on the command line: the results database, showing
the plan, a progress bar, the seed's tables. Their options are ``config.run.RunConfig`` (built by
``cli.runflags``); the work itself is ``orchestration.run_lanes``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from lanebench.cli.common import console, err_console
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.engines.hooks import Unavailable
from lanebench.errors import Interrupted
from lanebench.orchestration import RunOutcome, RunPlan, plan_run, run_lanes
from lanebench.orchestration.attribute_step import experiment_job
from lanebench.orchestration.pipeline import ResultStore
from lanebench.orchestration.plan import requests_per_lane
from lanebench.quality.assess import QualityOutcome
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.run import RunInfo
from lanebench.report.data import ReportData, RunData
from lanebench.report.render import lane_tables
from lanebench.report.tables import to_markdown, to_rich
from lanebench.store.sinks import JsonSink, Sink, write_atomic

EXIT_LANE_FAILED = 4


def open_results(config: RunConfig, needed: bool = True) -> ResultStore | None:
    """The results database the config names, unless ``--no-db`` (or it is not ``needed``)."""
    if not (config.use_db and needed):
        return None
    from lanebench.store import open_store

    return open_store(config.db)


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


def print_attribution_plan(rp: RunPlan, config: RunConfig) -> None:
    """``--attribute``: per lane, the servers of its experiment and what each switches off."""
    reps = experiment_job(config)
    for p in rp.plans:
        found = p.engine.attribution_suspects(p)
        if isinstance(found, Unavailable):
            console.print(f"- attribution: {p.lane.name}: none ({found.why})", highlight=False, markup=False)
            continue
        changes = [" ".join(v.change) for v in found.variants]
        console.print(
            f"- attribution: {p.lane.name}: {len(changes) + 2 if changes else 0} server(s) of "
            f"{reps.warmup} + {reps.reps} requests: control, "
            + ", ".join(changes)
            + ", control"
            + "".join(f"; not {name}: {why}" for name, why in found.skipped),
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
    """The pipeline's progress, as one rich bar over every request of the run, shown once the run
    starts (nothing is drawn while lanes are planned: a plan's error is a line of its own)."""

    def __init__(self, bar: Bar) -> None:
        self.bar, self.per_lane = bar, 0
        self.task = bar.add_task("starting", total=None)
        self.finished = 0
        self.run_id: str | None = None

    def run_started(self, run: RunInfo, lanes: int, skipped: int) -> None:
        self.run_id = run.run_id
        self.per_lane = requests_per_lane(run.job)
        self.bar.update(self.task, total=lanes * self.per_lane)
        self.bar.start()
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

    def lane_done(self, lane: str) -> None:
        self.finished += 1
        self.bar.update(self.task, completed=self.finished * self.per_lane)


def measure_with_progress(
    lanes: Sequence[LaneSpec],
    config: RunConfig,
    sinks: Sequence[Sink] = (),
    *,
    store: ResultStore | None = None,
    resume: str | None = None,
) -> RunOutcome:
    """``run_lanes`` under a progress bar on stderr (it plans, warns and measures; the lines it
    says are printed above the bar); Ctrl-C names the run to resume."""

    def say(text: str) -> None:
        warning = text.startswith("warning:")
        if progress is not None and not warning:
            progress.bar.update(progress.task, description=text)
        style = "yellow" if warning else None
        err_console.print(text, highlight=False, markup=False, style=style, soft_wrap=True)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    progress: RichProgress | None = None
    bar = Bar(*columns, console=err_console)
    try:
        progress = RichProgress(bar)
        return run_lanes(lanes, config, sinks, store=store, resume=resume, progress=progress, say=say)
    except (KeyboardInterrupt, Interrupted):
        run_id = progress.run_id if progress else None
        raise Interrupted(
            f"interrupted; servers stopped; what run {run_id} measured is kept"
            + (f" (resume with --resume {run_id})" if store is not None and run_id else "")
        ) from None
    finally:
        bar.stop()


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


def execute(
    lanes: Sequence[LaneSpec],
    config: RunConfig,
    *,
    markdown: Path | None = None,
    plots: Path | None = None,
    resume: str | None = None,
    dry_run: bool = False,
) -> RunOutcome | None:
    """Plan, measure and report lanes; None for a dry run."""
    store = open_results(config, needed=bool(resume) or not dry_run)
    if dry_run:
        rp = plan_run(lanes, config, store, resume)
        print_plan(rp, rp.config.job)
        if config.attribute:
            print_attribution_plan(rp, rp.config)
        return None
    sinks: list[Sink] = [JsonSink(config.json_out)] if config.json_out else []
    outcome = measure_with_progress(lanes, config, sinks, store=store, resume=resume)
    err_console.print(servers_line(outcome), highlight=False, markup=False)
    if outcome.quality is not None and outcome.quality.slice is not None:
        err_console.print(quality_line(outcome.quality), highlight=False, markup=False)
    render(outcome.run.job, outcome.results, markdown)
    if plots is not None:
        save_run_plots(outcome, plots)
    for r in outcome.results:
        if r.status != LaneStatus.OK:
            msg = r.error or "; ".join(r.flags)
            err_console.print(f"lane {r.name!r}: {r.status}: {msg}", markup=False, highlight=False)
    return outcome
