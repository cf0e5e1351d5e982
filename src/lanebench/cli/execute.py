"""What ``run``, ``sweep`` and ``tune`` share: plan, show the plan, measure with progress,
write to the store and files as measured, print the seed's tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lanebench.cli.common import console, err_console
from lanebench.errors import BadInput, Interrupted
from lanebench.lanes import LaneSpec
from lanebench.records import JobSpec, LaneResult
from lanebench.report.tables import draft_acceptance, latest_numbers, to_markdown, to_rich
from lanebench.runner import LanePlan, RunOptions, new_run, plan_lanes, requests_per_lane
from lanebench.sinks import JsonSink, RunInfo, Sink, write_atomic
from lanebench.sweep import group_plans, measure_group, per_request_support

EXIT_LANE_FAILED = 4


@dataclass(slots=True)
class Outputs:
    json_out: Path | None = None
    markdown: Path | None = None
    db: str | None = None
    use_db: bool = True


def check_job(job: JobSpec) -> JobSpec:
    limits = (
        ("--n-in", job.n_in, 1),
        ("--n-out", job.n_out, 1),
        ("--reps", job.reps, 1),
        ("--warmup", job.warmup, 0),
        ("--aggregate", job.aggregate, 0),
        ("--max-reps", job.max_reps, job.reps),
    )
    for flag, value, low in limits:
        if value < low:
            raise BadInput(f"{flag}: expected an integer >= {low}, got {value}")
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


def print_plan(groups: Sequence[Sequence[LanePlan]], job: JobSpec) -> None:
    n = sum(len(g) for g in groups)
    console.print(
        f"[bold]plan[/]: {n} lane(s) on at most {n} server start(s) "
        f"({len(groups)} if the build takes per-request speculative fields); "
        f"{requests_per_lane(job)} requests per lane ({job.warmup} warm-up, {job.reps} single"
        + (f" up to {job.max_reps} for a {100 * job.target_ci:g}% CI" if job.target_ci else "")
        + f", {job.reps} x {job.aggregate} concurrent), {job.n_in} tokens in / {job.n_out} out each"
    )
    for i, g in enumerate(groups, 1):
        for p in g:
            console.print(
                f"- server {i}: {p.lane.name}: {' '.join(p.argv_preview)}", highlight=False, markup=False
            )


def render(job: JobSpec, results: Sequence[LaneResult], markdown: Path | None) -> str:
    tables = [latest_numbers(results, job)]
    if (acc := draft_acceptance(results)) is not None:
        tables.append(acc)
    for t in tables:
        console.print(to_rich(t))
    md = "\n".join(to_markdown(t) for t in tables)
    if markdown is not None:
        write_atomic(markdown, md)
    return md


def measure_groups(
    groups: Sequence[Sequence[LanePlan]], run_info: RunInfo, opts: RunOptions, sinks: Sequence[Sink]
) -> tuple[list[LaneResult], int]:
    """Measure every group with a progress bar; returns results and servers started."""
    results: list[LaneResult] = []
    servers = 0
    per_lane = requests_per_lane(opts.job)
    total = per_lane * sum(len(g) for g in groups)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=err_console) as bar:
            task = bar.add_task("starting", total=total)

            def progress(name: str, done: int, total_: int) -> None:
                bar.update(
                    task, completed=len(results) * per_lane + done, description=f"{name}: {done}/{total_}"
                )

            for group in groups:
                bar.update(task, description=f"{group[0].lane.name}: loading")
                got, started = measure_group(group, run_info, opts, sinks, progress)
                results += got
                servers += started
                bar.update(task, completed=len(results) * per_lane)
        run_info.status = "failed" if any(r.status == "failed" for r in results) else "done"
    except BaseException:
        run_info.status = "interrupted"
        raise
    finally:
        run_info.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        for s in sinks:
            s.run_finished(run_info)
    return results, servers


def _servers_line(servers: int, plans: Sequence[LanePlan]) -> str:
    """How many servers measured how many lanes, and whether sharing one was possible."""
    line = f"servers started: {servers} for {len(plans)} lane(s)"
    known = {per_request_support(p.server_bin) for p in plans} - {None}
    if known:
        line += " (per-request speculative fields: " + ("honoured" if known == {True} else "ignored") + ")"
    return line


def execute(
    lanes: Sequence[LaneSpec],
    opts: RunOptions,
    out: Outputs,
    *,
    lanes_file: Path | None = None,
    resume: str | None = None,
    dry_run: bool = False,
    reuse: bool = True,
) -> tuple[RunInfo, list[LaneResult]]:
    """Plan, measure and report lanes; returns the run and every lane's result (resumed ones too)."""
    store = None
    if out.use_db and (resume or not dry_run):
        from lanebench.store import open_store

        store = open_store(out.db)
    run_info: RunInfo | None = None
    done: set[str] = set()
    if resume:
        assert store is not None
        run_info = store.get_run(resume)
        opts.job = run_info.job
        store.discard_unfinished(resume)
        done = store.finished_lane_names(resume)
    plans = plan_lanes([lane for lane in lanes if lane.name not in done], opts)
    groups = group_plans(plans) if reuse else [[p] for p in plans]
    if dry_run:
        print_plan(groups, opts.job)
        if done:
            console.print(f"already measured in {resume}: {', '.join(sorted(done))}", highlight=False)
        return new_run(opts, {}), []
    if run_info is None:
        builds = {str(p.server_bin): p.dialect for p in plans}
        run_info = new_run(opts, builds, str(lanes_file) if lanes_file else None)
    sinks: list[Sink] = []
    if store is not None:
        sinks.append(store.sink())
    if out.json_out:
        sinks.append(JsonSink(out.json_out))
    for s in sinks:
        s.run_started(run_info)
    err_console.print(
        f"run {run_info.run_id}" + (f" (resumed; skipping {len(done)} lane(s))" if done else "")
    )
    try:
        results, servers = measure_groups(groups, run_info, opts, sinks)
        err_console.print(_servers_line(servers, plans), highlight=False, markup=False)
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(
            f"interrupted; servers stopped; what run {run_info.run_id} measured is kept"
            + (" (resume with --resume " + run_info.run_id + ")" if store is not None else "")
        ) from None
    if store is not None and resume:
        results = store.load_lanes(run_info.run_id)
    render(run_info.job, results, out.markdown)
    for r in results:
        if r.status != "ok":
            msg = r.error or "; ".join(r.flags)
            err_console.print(f"lane {r.name!r}: {r.status}: {msg}", markup=False, highlight=False)
    return run_info, results
