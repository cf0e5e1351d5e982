"""The ``lanebench`` command: a thin typer app; each command lives in its own module."""

from __future__ import annotations

import signal

import typer

from lanebench import __version__
from lanebench.cli import (
    advise_cmd,
    engine_cmd,
    explain_cmd,
    gguf_cmd,
    quality_cmd,
    results_cmd,
    run_cmd,
    sweep_cmd,
)
from lanebench.cli.common import fail
from lanebench.errors import Interrupted, LanebenchError

app = typer.Typer(
    name="lanebench",
    help="Which way of serving this model is fastest on my machine? Measures llama.cpp lanes for real.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lanebench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """lanebench: measure, compare and explain ways of serving an LLM on this machine."""


for module in (run_cmd, engine_cmd, sweep_cmd, gguf_cmd, results_cmd, explain_cmd, advise_cmd, quality_cmd):
    module.register(app)


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM become a domain error: servers stop on the way out, results stay."""
    raise Interrupted("interrupted; servers stopped, results measured so far are kept")


def main() -> None:
    """Entry point: domain errors become one clear line and a meaningful exit code."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        app()
    except LanebenchError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted; servers stopped, results measured so far are kept", 130)


if __name__ == "__main__":
    main()
