"""``lanebench run``."""

from __future__ import annotations

from pathlib import Path

import typer

from lanebench.cli import options as o
from lanebench.cli.execute import EXIT_LANE_FAILED, execute
from lanebench.cli.runflags import run_flags
from lanebench.config.defaults import default_lanes
from lanebench.config.lanesfile import load_lanes_file
from lanebench.config.run import RunConfig


@run_flags()
def run(
    lanes_file: Path | None = typer.Argument(
        None, help="Lanes TOML; empty = the built-in lanes on the 270M model."
    ),
    markdown: o.Markdown = None,
    plots: o.Plots = None,
    resume: o.Resume = None,
    dry_run: o.DryRun = False,
    *,
    config: RunConfig,
) -> None:
    """Measure every lane: load time, prefill, decode, normalized wall, N-slot aggregate, acceptance."""
    lanes, job = load_lanes_file(lanes_file) if lanes_file else (default_lanes(), {})
    config = config.under_file(job, str(lanes_file)).model_copy(update={"lanes_file": lanes_file})
    outcome = execute(lanes, config, markdown=markdown, plots=plots, resume=resume, dry_run=dry_run)
    if outcome is not None and outcome.failed:
        raise typer.Exit(EXIT_LANE_FAILED)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
