"""``lanebench sweep`` and ``lanebench tune``: grids over lane fields."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from lanebench.cli.common import console, print_json
from lanebench.cli.execute import EXIT_LANE_FAILED, Outputs, check_job, execute, measure_groups, parse_share
from lanebench.lanes import LaneSpec, load_lanes
from lanebench.models import cache_dir
from lanebench.records import JobSpec, LaneResult
from lanebench.runner import RunOptions, new_run, plan_lanes
from lanebench.sweep import expand, group_plans, parse_grid
from lanebench.tune import GOALS, tune_lanes

GRID_HELP = (
    "FIELD=V1,V2,... over a lane field, e.g. 'draft.block_size=2,3,4' (repeatable: cartesian product)."
)


OUT_DIR_HELP = "Server logs go here (default: the user cache dir)."


def _opts(job: JobSpec, server_bin: Path | None, no_check: bool, out_dir: Path | None = None) -> RunOptions:
    return RunOptions(
        job=check_job(job),
        out_dir=out_dir or cache_dir() / "logs",
        server_bin=server_bin,
        check_drafts=not no_check,
    )


def sweep(
    lanes_file: Path = typer.Argument(..., help="Lanes TOML whose lanes are expanded by the grids."),
    grid: list[str] = typer.Option([], "--grid", help=GRID_HELP),
    n_in: int = typer.Option(1150, "--n-in", help="Prompt tokens per request."),
    n_out: int = typer.Option(200, "--n-out", help="Generated tokens per request."),
    reps: int = typer.Option(3, "--reps", help="Measured repetitions per point."),
    warmup: int = typer.Option(1, "--warmup", help="Warm-up requests per point."),
    aggregate: int = typer.Option(2, "--aggregate", help="Concurrent jobs for the aggregate (0 = skip)."),
    target_ci: str | None = typer.Option(
        None, "--target-ci", help="Repeat until the median decode's 95% CI fits."
    ),
    max_reps: int = typer.Option(20, "--max-reps", help="Most repetitions with --target-ci."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write everything to this JSON file, as measured."
    ),
    markdown: Path | None = typer.Option(None, "--markdown", help="Write the tables as markdown."),
    db: str | None = typer.Option(
        None, "--db", envvar="LANEBENCH_DB", help="Results database (path or URL)."
    ),
    no_db: bool = typer.Option(False, "--no-db", help="Do not record this sweep in the database."),
    resume: str | None = typer.Option(None, "--resume", help="Measure only the points RUN_ID is missing."),
    server_bin: Path | None = typer.Option(
        None, "--server-bin", envvar="LANEBENCH_SERVER_BIN", help="llama-server."
    ),
    no_reuse: bool = typer.Option(False, "--no-reuse", help="Restart the server for every point."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the draft/head check before starting."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (servers to start, requests) and exit."
    ),
    out_dir: Path | None = typer.Option(None, "--out-dir", help=OUT_DIR_HELP),
) -> None:
    """Measure the cartesian product of lane fields, reusing a server where only request fields change."""
    job = JobSpec(n_in=n_in, n_out=n_out, reps=reps, warmup=warmup, aggregate=aggregate)
    job.target_ci, job.max_reps = parse_share(target_ci), max_reps
    lanes = expand(load_lanes(lanes_file), [parse_grid(g) for g in grid])
    out = Outputs(json_out=json_out, markdown=markdown, db=db, use_db=not no_db)
    _, results = execute(
        lanes,
        _opts(job, server_bin, no_check, out_dir),
        out,
        lanes_file=lanes_file,
        resume=resume,
        dry_run=dry_run,
        reuse=not no_reuse,
    )
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_LANE_FAILED)


def tune(
    lanes_file: Path = typer.Argument(..., help="Lanes TOML whose lanes are expanded by the grids."),
    grid: list[str] = typer.Option([], "--grid", help=GRID_HELP),
    goal: str = typer.Option("decode", "--goal", help=f"What to maximise: {', '.join(GOALS)}."),
    n_in: int = typer.Option(1150, "--n-in", help="Prompt tokens of the final (confirming) job."),
    n_out: int = typer.Option(200, "--n-out", help="Generated tokens of the final (confirming) job."),
    reps: int = typer.Option(3, "--reps", help="Repetitions of the confirming job."),
    keep: float = typer.Option(0.5, "--keep", help="Share of candidates kept after each round."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable summary of the search."),
    server_bin: Path | None = typer.Option(
        None, "--server-bin", envvar="LANEBENCH_SERVER_BIN", help="llama-server."
    ),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the draft/head check before starting."),
) -> None:
    """Find the best lane of a grid with fewer measurements than the full grid (successive halving)."""
    lanes = expand(load_lanes(lanes_file), [parse_grid(g) for g in grid])
    final = JobSpec(n_in=n_in, n_out=n_out, reps=reps, warmup=1, aggregate=2 if goal == "aggregate" else 0)
    report = tune_lanes(lanes, goal, final, _opts(final, server_bin, no_check), measure_quietly, keep=keep)
    if json_out:
        print_json(report.to_dict())
        return
    for line in report.log:
        console.print(line, highlight=False, markup=False)
    console.print(f"[bold]best lane[/]: {report.best}", highlight=False)


def measure_quietly(lanes: Sequence[LaneSpec], opts: RunOptions) -> list[LaneResult]:
    """Measure lanes with a progress bar and no tables or store (one tune round)."""
    plans = plan_lanes(lanes, opts)
    run_info = new_run(opts, {str(p.server_bin): p.dialect for p in plans})
    results, _ = measure_groups(group_plans(plans), run_info, opts, [])
    return results


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.command("tune")(tune)
