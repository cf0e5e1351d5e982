"""``lanebench sweep`` and ``lanebench tune``: grids over lane fields."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from lanebench.cli import options as o
from lanebench.cli.common import console, err_console, print_json
from lanebench.cli.execute import (
    EXIT_LANE_FAILED,
    Outputs,
    execute,
    make_job,
    make_options,
    measure_with_progress,
)
from lanebench.config.defaults import DEFAULT_JOB
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import load_lanes
from lanebench.orchestration import RunOptions
from lanebench.orchestration.grid import expand, parse_grid
from lanebench.orchestration.quality_step import quality_only
from lanebench.orchestration.tune import GOALS, tune_lanes
from lanebench.records.lane import LaneResult
from lanebench.records.quality import QualityRecord


def sweep(
    lanes_file: Path = typer.Argument(..., help="Lanes TOML whose lanes are expanded by the grids."),
    grid: o.Grid = [],  # noqa: B006 - typer reads the default, never mutates it
    n_in: o.NIn = None,
    n_out: o.NOut = None,
    reps: o.Reps = 3,
    warmup: o.Warmup = 1,
    aggregate: o.Aggregate = 2,
    full: o.Full = False,
    target_ci: o.TargetCi = None,
    max_reps: o.MaxReps = 20,
    remeasure_busy: o.RemeasureBusy = None,
    json_out: o.JsonOut = None,
    markdown: o.Markdown = None,
    db: o.Db = None,
    no_db: o.NoDb = False,
    resume: o.Resume = None,
    server_bin: o.ServerBin = None,
    out_dir: o.OutDir = None,
    load_timeout: o.LoadTimeout = 300.0,
    no_check: o.NoCheck = False,
    no_fit_check: o.NoFitCheck = False,
    baseline: o.Baseline = None,
    no_reuse: o.NoReuse = False,
    dry_run: o.DryRun = False,
) -> None:
    """Measure the cartesian product of lane fields, reusing a server where only request fields change."""
    from lanebench.config.defaults import FULL_JOB

    job = make_job(
        FULL_JOB if full else DEFAULT_JOB,
        n_in, n_out, reps, warmup, aggregate, target_ci, max_reps, remeasure_busy,
    )  # fmt: skip
    lanes = expand(load_lanes(lanes_file), [parse_grid(g) for g in grid])
    opts = make_options(
        job,
        server_bin=server_bin,
        out_dir=out_dir,
        load_timeout=load_timeout,
        no_check=no_check,
        no_fit_check=no_fit_check,
        baseline=full if baseline is None else baseline,
        no_reuse=no_reuse,
        lanes_file=lanes_file,
    )
    out = Outputs(json_out=json_out, markdown=markdown, db=db, use_db=not no_db)
    outcome = execute(lanes, opts, out, resume=resume, dry_run=dry_run)
    if outcome is not None and outcome.failed:
        raise typer.Exit(EXIT_LANE_FAILED)


def tune(
    lanes_file: Path = typer.Argument(..., help="Lanes TOML whose lanes are expanded by the grids."),
    grid: o.Grid = [],  # noqa: B006 - typer reads the default, never mutates it
    goal: str = typer.Option("decode", "--goal", help=f"What to maximise: {', '.join(GOALS)}."),
    n_in: o.NIn = None,
    n_out: o.NOut = None,
    reps: o.Reps = 3,
    keep: float = typer.Option(0.5, "--keep", help="Share of candidates kept after each round."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable summary of the search."),
    db: o.Db = None,
    no_db: o.NoDb = False,
    server_bin: o.ServerBin = None,
    out_dir: o.OutDir = None,
    load_timeout: o.LoadTimeout = 300.0,
    no_check: o.NoCheck = False,
    max_kld: float | None = typer.Option(
        None,
        "--max-kld",
        help="Only lanes whose mean KLD against the reference is at most this (nats/token) compete; "
        "quality is scored first with the build's llama-perplexity.",
    ),
    reference: o.Reference = None,
    quality_tokens: o.QualityTokens = 4096,
    min_margin: float = typer.Option(
        0.0,
        "--min-margin",
        help="A finalist must lead by at least this share (e.g. 0.05) to be called better; below it "
        "the finalists tie. Default 0: the repetitions' min-max ranges alone decide.",
    ),
) -> None:
    """Find the best lane of a grid with fewer measurements than the full grid (successive halving).

    Every round is recorded in the results database as its own run (unless --no-db)."""
    lanes = expand(load_lanes(lanes_file), [parse_grid(g) for g in grid])
    final = make_job(DEFAULT_JOB, n_in, n_out, reps, 1, 2 if goal == "aggregate" else 0)
    opts = make_options(
        final,
        server_bin=server_bin,
        out_dir=out_dir,
        load_timeout=load_timeout,
        no_check=no_check,
        lanes_file=lanes_file,
        reference=reference,
        quality_tokens=quality_tokens,
    )
    store = None
    if not no_db:
        from lanebench.store import open_store

        store = open_store(db)

    def measure(candidates: Sequence[LaneSpec], round_opts: RunOptions) -> list[LaneResult]:
        return measure_with_progress(candidates, round_opts, store=store).results

    def score(candidates: Sequence[LaneSpec], round_opts: RunOptions) -> dict[str, QualityRecord]:
        return quality_only(candidates, round_opts, _say).records

    report = tune_lanes(
        lanes, goal, final, opts, measure, keep=keep, max_kld=max_kld, quality=score, min_margin=min_margin
    )
    if json_out:
        print_json(report.to_dict())
        return
    # never as markup (rich would take a grid lane's "[kv=q8_0]" for a style tag and drop it), and
    # one line each, whatever the terminal's width
    for line in [*report.log, report.best_line()]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _say(text: str) -> None:
    err_console.print(text, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.command("tune")(tune)
