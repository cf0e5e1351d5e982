"""``lanebench run``."""

from __future__ import annotations

from pathlib import Path

import typer

from lanebench.cli import options as o
from lanebench.cli.execute import EXIT_LANE_FAILED, Outputs, execute, make_job, make_options
from lanebench.config.defaults import DEFAULT_JOB, FULL_JOB, default_lanes
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import load_lanes


def run(
    lanes_file: Path | None = typer.Argument(
        None, help="Lanes TOML; empty = the built-in lanes on the 270M model."
    ),
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
    plots: o.Plots = None,
    db: o.Db = None,
    no_db: o.NoDb = False,
    resume: o.Resume = None,
    server_bin: o.ServerBin = None,
    out_dir: o.OutDir = None,
    load_timeout: o.LoadTimeout = 300.0,
    no_check: o.NoCheck = False,
    no_fit_check: o.NoFitCheck = False,
    baseline: o.Baseline = None,
    attribute: o.Attribute = False,
    attribute_reps: o.AttributeReps = 5,
    no_reuse: o.NoReuse = False,
    dry_run: o.DryRun = False,
    quality: o.Quality = False,
    reference: o.Reference = None,
    quality_tokens: o.QualityTokens = 4096,
    depth: o.Depth = None,
    concurrency: o.Concurrency = None,
    budget: o.Budget = None,
) -> None:
    """Measure every lane: load time, prefill, decode, normalized wall, N-slot aggregate, acceptance."""
    job = make_job(
        FULL_JOB if full else DEFAULT_JOB,
        n_in, n_out, reps, warmup, aggregate, target_ci, max_reps, remeasure_busy, depth, concurrency, budget,
    )  # fmt: skip
    lanes: list[LaneSpec] = load_lanes(lanes_file) if lanes_file else default_lanes()
    opts = make_options(
        job,
        server_bin=server_bin,
        out_dir=out_dir,
        load_timeout=load_timeout,
        no_check=no_check,
        no_fit_check=no_fit_check,
        baseline=full if baseline is None else baseline,
        attribute=attribute,
        attribute_reps=attribute_reps,
        no_reuse=no_reuse,
        lanes_file=lanes_file,
        quality=quality,
        reference=reference,
        quality_tokens=quality_tokens,
    )
    out = Outputs(json_out=json_out, markdown=markdown, db=db, use_db=not no_db, plots=plots)
    outcome = execute(lanes, opts, out, resume=resume, dry_run=dry_run)
    if outcome is not None and outcome.failed:
        raise typer.Exit(EXIT_LANE_FAILED)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
