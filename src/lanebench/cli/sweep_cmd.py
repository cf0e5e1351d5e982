"""``lanebench sweep`` and ``lanebench tune``: grids over lane fields."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import typer

from lanebench.cli import options as o
from lanebench.cli.common import console, err_console
from lanebench.cli.execute import EXIT_LANE_FAILED, execute, measure_with_progress, open_results
from lanebench.cli.runflags import run_flags
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import load_lanes_file
from lanebench.config.run import RunConfig
from lanebench.orchestration.grid import expand, parse_grid
from lanebench.orchestration.pipeline import ResultStore
from lanebench.orchestration.quality_step import quality_only
from lanebench.orchestration.tune import GOALS, Measure, tune_config, tune_lanes
from lanebench.records.lane import LaneResult
from lanebench.records.quality import QualityRecord
from lanebench.store.sinks import write_atomic

LANES = typer.Argument(..., help="Lanes TOML whose lanes are expanded by the grids.")


@run_flags()
def sweep(
    lanes_file: Path = LANES,
    grid: o.Grid = [],  # noqa: B006 - typer reads the default, never mutates it
    markdown: o.Markdown = None,
    plots: o.Plots = None,
    resume: o.Resume = None,
    dry_run: o.DryRun = False,
    *,
    config: RunConfig,
) -> None:
    """Measure the cartesian product of lane fields, reusing a server where only request fields change."""
    lanes, job = load_lanes_file(lanes_file)
    lanes = expand(lanes, [parse_grid(g) for g in grid])
    config = config.under_file(job, str(lanes_file)).model_copy(update={"lanes_file": lanes_file})
    outcome = execute(lanes, config, markdown=markdown, plots=plots, resume=resume, dry_run=dry_run)
    if outcome is not None and outcome.failed:
        raise typer.Exit(EXIT_LANE_FAILED)


@run_flags(
    help={
        "json_out": "Write the search (rounds, figures, decision, quality) to this JSON file.",
        "aggregate": "Concurrent jobs for the N-slot aggregate (default: 2 with --goal aggregate, "
        "else 0 = skip).",
        "quality": "Score every candidate against the reference lane once, before the rounds "
        "(as --max-kld does), with the build's llama-perplexity; the rounds never score it.",
    }
)
def tune(
    lanes_file: Path = LANES,
    grid: o.Grid = [],  # noqa: B006 - typer reads the default, never mutates it
    goal: str = typer.Option("decode", "--goal", help=f"What to maximise: {', '.join(GOALS)}."),
    keep: float = typer.Option(0.5, "--keep", help="Share of candidates kept after each round."),
    max_kld: float | None = typer.Option(
        None,
        "--max-kld",
        help="Only lanes whose mean KLD against the reference is at most this (nats/token) compete; "
        "quality is scored first with the build's llama-perplexity.",
    ),
    min_margin: float = typer.Option(
        0.0,
        "--min-margin",
        help="A finalist must lead by at least this share (e.g. 0.05) to be called better; below it "
        "the finalists tie. Default 0: the repetitions' min-max ranges alone decide.",
    ),
    *,
    config: RunConfig,
) -> None:
    """Find the best lane of a grid with fewer measurements than the full grid (successive halving).

    The job options give the confirm round's job; the rounds before it screen on shorter jobs
    (one warm-up, one repetition, no --target-ci), doubling in length.

    Every round is its own run in the results database (unless --no-db): no --resume, --dry-run
    or --markdown.

    Stdout is the search's log; --json FILE writes it machine-readable.
    """
    lanes, job = load_lanes_file(lanes_file)
    lanes = expand(lanes, [parse_grid(g) for g in grid])
    config = tune_config(
        config.under_file(job, str(lanes_file)).model_copy(update={"lanes_file": lanes_file}), goal
    )
    measure = _measure(open_results(config))
    report = tune_lanes(
        lanes, goal, config, measure, keep=keep, max_kld=max_kld, quality=_score, min_margin=min_margin
    )
    if config.json_out is not None:
        write_atomic(config.json_out, json.dumps(report.to_dict(), indent=2, default=str))
    # never as markup (rich would take a grid lane's "[kv=q8_0]" for a style tag and drop it), and
    # one line each, whatever the terminal's width
    for line in [*report.log, report.best_line()]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _measure(store: ResultStore | None) -> Measure:
    """Each round of tune: its lanes under a progress bar, recorded in ``store``."""

    def measure(candidates: Sequence[LaneSpec], config: RunConfig) -> list[LaneResult]:
        return measure_with_progress(candidates, config, store=store).results

    return measure


def _score(candidates: Sequence[LaneSpec], config: RunConfig) -> dict[str, QualityRecord]:
    return quality_only(candidates, config, _say).records


def _say(text: str) -> None:
    err_console.print(text, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.command("tune")(tune)
