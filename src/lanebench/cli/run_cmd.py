"""``lanebench run``."""

from __future__ import annotations

from pathlib import Path

import typer

from lanebench.cli.execute import EXIT_LANE_FAILED, Outputs, check_job, execute, parse_share
from lanebench.defaults import DEFAULT_JOB, FULL_JOB, default_lanes
from lanebench.lanes import LaneSpec, load_lanes
from lanebench.models import cache_dir
from lanebench.records import JobSpec
from lanebench.runner import RunOptions


def _job(full: bool, n_in: int | None, n_out: int | None, reps: int, warmup: int, aggregate: int) -> JobSpec:
    base = FULL_JOB if full else DEFAULT_JOB
    return JobSpec(
        n_in=n_in if n_in is not None else base.n_in,
        n_out=n_out if n_out is not None else base.n_out,
        reps=reps,
        warmup=warmup,
        aggregate=aggregate,
    )


def run(
    lanes_file: Path | None = typer.Argument(
        None, help="Lanes TOML; empty = the built-in lanes on the 270M model."
    ),
    n_in: int | None = typer.Option(None, "--n-in", help="Prompt tokens per request (default 1150)."),
    n_out: int | None = typer.Option(
        None, "--n-out", help="Generated tokens per request (default 200; --full 2000)."
    ),
    reps: int = typer.Option(3, "--reps", help="Measured repetitions after the warm-up."),
    warmup: int = typer.Option(1, "--warmup", help="Warm-up requests, not counted."),
    aggregate: int = typer.Option(
        2, "--aggregate", help="Concurrent jobs for the N-slot aggregate (0 = skip)."
    ),
    full: bool = typer.Option(False, "--full", help="The seed report's job: 1150 in / 2000 out."),
    target_ci: str | None = typer.Option(
        None, "--target-ci", help="Repeat until the 95% CI of median decode is within this (e.g. 2%)."
    ),
    max_reps: int = typer.Option(20, "--max-reps", help="Most repetitions with --target-ci."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write everything, raw samples too, to this JSON file."
    ),
    markdown: Path | None = typer.Option(
        None, "--markdown", help="Write the tables as markdown to this file."
    ),
    db: str | None = typer.Option(
        None, "--db", envvar="LANEBENCH_DB", help="Results database: SQLite path or postgresql://... URL."
    ),
    no_db: bool = typer.Option(False, "--no-db", help="Do not record this run in the results database."),
    resume: str | None = typer.Option(None, "--resume", help="Measure only the lanes RUN_ID is missing."),
    server_bin: Path | None = typer.Option(
        None, "--server-bin", envvar="LANEBENCH_SERVER_BIN", help="llama-server for lanes that name none."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", help="Server logs go here (default: the user cache dir)."
    ),
    load_timeout: float = typer.Option(
        300.0, "--load-timeout", help="Seconds to wait for a server to listen."
    ),
    no_check: bool = typer.Option(
        False, "--no-check", help="Skip the draft/head compatibility check before starting."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (servers, argv, requests) and exit."
    ),
) -> None:
    """Measure every lane: load time, prefill, decode, normalized wall, N-slot aggregate, acceptance."""
    job = _job(full, n_in, n_out, reps, warmup, aggregate)
    job.target_ci, job.max_reps = parse_share(target_ci), max_reps
    lanes: list[LaneSpec] = load_lanes(lanes_file) if lanes_file else default_lanes()
    opts = RunOptions(
        job=check_job(job),
        out_dir=out_dir or cache_dir() / "logs",
        server_bin=server_bin,
        load_timeout_s=load_timeout,
        check_drafts=not no_check,
    )
    out = Outputs(json_out=json_out, markdown=markdown, db=db, use_db=not no_db)
    _, results = execute(lanes, opts, out, lanes_file=lanes_file, resume=resume, dry_run=dry_run)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_LANE_FAILED)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
