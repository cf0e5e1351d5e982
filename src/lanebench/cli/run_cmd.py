"""``lanebench run`` and ``lanebench doctor``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lanebench.cli.common import console, err_console, print_json
from lanebench.defaults import DEFAULT_JOB, FULL_JOB, default_lanes
from lanebench.errors import BadInput
from lanebench.lanes import LaneSpec, load_lanes
from lanebench.records import JobSpec, LaneResult
from lanebench.report.tables import draft_acceptance, latest_numbers, to_markdown, to_rich
from lanebench.runner import (
    LanePlan,
    RunOptions,
    measure_plan,
    new_run,
    plan_lanes,
    requests_per_lane,
)
from lanebench.sinks import JsonSink, RunInfo, Sink, write_atomic

EXIT_LANE_FAILED = 4


def _job(full: bool, n_in: int | None, n_out: int | None, reps: int, warmup: int, aggregate: int) -> JobSpec:
    base = FULL_JOB if full else DEFAULT_JOB
    job = JobSpec(
        n_in=n_in if n_in is not None else base.n_in,
        n_out=n_out if n_out is not None else base.n_out,
        reps=reps,
        warmup=warmup,
        aggregate=aggregate,
    )
    for flag, value, low in (
        ("--n-in", job.n_in, 1),
        ("--n-out", job.n_out, 1),
        ("--reps", job.reps, 1),
        ("--warmup", job.warmup, 0),
        ("--aggregate", job.aggregate, 0),
    ):
        if value < low:
            raise BadInput(f"{flag}: expected an integer >= {low}, got {value}")
    return job


def _print_plan(plans: list[LanePlan], job: JobSpec) -> None:
    console.print(
        f"[bold]plan[/]: {len(plans)} lane(s), {requests_per_lane(job)} requests each "
        f"({job.warmup} warm-up, {job.reps} single, {job.reps} x {job.aggregate} concurrent)"
    )
    for p in plans:
        console.print(f"- {p.lane.name}: {' '.join(p.argv_preview)}", highlight=False, markup=False)


def _render(run: RunInfo, results: list[LaneResult], markdown: Path | None) -> str:
    tables = [latest_numbers(results, run.job)]
    if (acc := draft_acceptance(results)) is not None:
        tables.append(acc)
    for t in tables:
        console.print(to_rich(t))
    md = "\n".join(to_markdown(t) for t in tables)
    if markdown is not None:
        write_atomic(markdown, md)
    return md


def run(
    lanes_file: Path | None = typer.Argument(
        None, help="Lanes TOML; empty = the built-in lanes on the 270M model."
    ),
    n_in: int | None = typer.Option(None, "--n-in", help="Prompt tokens per request (default 1150)."),
    n_out: int | None = typer.Option(
        None, "--n-out", help="Generated tokens per request (default 200; 2000 with --full)."
    ),
    reps: int = typer.Option(3, "--reps", help="Measured repetitions after the warm-up."),
    warmup: int = typer.Option(1, "--warmup", help="Warm-up requests, not counted."),
    aggregate: int = typer.Option(
        2, "--aggregate", help="Concurrent jobs for the N-slot aggregate (0 = skip)."
    ),
    full: bool = typer.Option(False, "--full", help="The seed report's job: 1150 in / 2000 out."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write everything (raw samples too) to this JSON file, as measured."
    ),
    markdown: Path | None = typer.Option(
        None, "--markdown", help="Write the tables as markdown to this file."
    ),
    server_bin: Path | None = typer.Option(
        None,
        "--server-bin",
        envvar="LANEBENCH_SERVER_BIN",
        help="llama-server to use for lanes that name none.",
    ),
    out_dir: Path = typer.Option(Path("lanebench-out"), "--out-dir", help="Server logs go here."),
    load_timeout: float = typer.Option(
        300.0, "--load-timeout", help="Seconds to wait for a server to listen."
    ),
    no_check: bool = typer.Option(
        False, "--no-check", help="Skip the draft/head compatibility check before starting."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (argv per lane) and exit."),
) -> None:
    """Measure every lane: load time, prefill, decode, normalized wall, N-slot aggregate, acceptance."""
    job = _job(full, n_in, n_out, reps, warmup, aggregate)
    lanes: list[LaneSpec] = load_lanes(lanes_file) if lanes_file else default_lanes()
    opts = RunOptions(
        job=job,
        out_dir=out_dir,
        server_bin=server_bin,
        load_timeout_s=load_timeout,
        check_drafts=not no_check,
    )
    plans = plan_lanes(lanes, opts)
    if dry_run:
        _print_plan(plans, job)
        return
    run_info = new_run(
        opts, {str(p.server_bin): p.dialect for p in plans}, str(lanes_file) if lanes_file else None
    )
    sinks: list[Sink] = [JsonSink(json_out)] if json_out else []
    for s in sinks:
        s.run_started(run_info)
    results = _measure_all(plans, run_info, opts, sinks)
    _render(run_info, results, markdown)
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        if r.status != "ok":
            err_console.print(
                f"[yellow]lane {r.name!r}: {r.status}[/]: {r.error or '; '.join(r.flags)}",
                markup=True,
                highlight=False,
            )
    if failed:
        raise typer.Exit(EXIT_LANE_FAILED)


def _measure_all(
    plans: list[LanePlan], run_info: RunInfo, opts: RunOptions, sinks: list[Sink]
) -> list[LaneResult]:
    results: list[LaneResult] = []
    per_lane = requests_per_lane(opts.job)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=err_console, transient=False) as bar:
            task = bar.add_task("starting", total=per_lane * len(plans))
            for i, plan in enumerate(plans):

                def progress(name: str, done: int, total: int, i: int = i) -> None:
                    bar.update(
                        task, completed=i * per_lane + done, description=f"{name}: request {done}/{total}"
                    )

                bar.update(task, completed=i * per_lane, description=f"{plan.lane.name}: loading")
                results.append(measure_plan(plan, run_info, opts, sinks, progress))
                bar.update(task, completed=(i + 1) * per_lane)
        run_info.status = "failed" if any(r.status == "failed" for r in results) else "done"
    except BaseException:
        run_info.status = "interrupted"
        raise
    finally:
        from datetime import UTC, datetime

        run_info.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        for s in sinks:
            s.run_finished(run_info)
    return results


def doctor(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Which llama-server lanebench finds, its version and dialect, and whether the default model is there."""
    from lanebench.doctor import diagnose

    report = diagnose()
    if json_out:
        print_json(report)
    else:
        for item in report["items"]:
            mark = "[green]ok[/]" if item["ok"] else "[red]missing[/]"
            console.print(f"{mark}  [bold]{item['what']}[/]: {item['detail']}", highlight=False)
            if not item["ok"] and item.get("fix"):
                console.print(f"     fix: {item['fix']}", highlight=False, markup=False)
    if not all(i["ok"] for i in report["items"]):
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("doctor")(doctor)
