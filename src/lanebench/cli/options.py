"""Options some commands share beside the run configuration's (``config.run.RunConfig``, whose
flags ``cli.runflags`` adds): the tables as markdown, resuming, the dry run, the grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Markdown = Annotated[
    Path | None, typer.Option("--markdown", help="Write the tables as markdown to this file.")
]
Plots = Annotated[
    Path | None,
    typer.Option("--plots", help="Also save the run's plots (the envelope's too) as PNG in this folder."),
]
Resume = Annotated[str | None, typer.Option("--resume", help="Measure only the lanes RUN_ID is missing.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan (servers, argv, requests) and exit.")]
Grid = Annotated[
    list[str],
    typer.Option(
        "--grid",
        help="FIELD=V1,V2,... over a lane field, e.g. 'draft.block_size=2,3,4' "
        "(repeatable: cartesian product).",
    ),
]
