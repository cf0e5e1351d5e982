"""Options ``run``, ``sweep`` and ``tune`` share, defined once so they cannot drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MAX_AGGREGATE = 256

NIn = Annotated[int | None, typer.Option("--n-in", help="Prompt tokens per request (default 1150).")]
NOut = Annotated[
    int | None, typer.Option("--n-out", help="Generated tokens per request (default 200; --full 2000).")
]
Reps = Annotated[int, typer.Option("--reps", help="Measured repetitions after the warm-up.")]
Warmup = Annotated[int, typer.Option("--warmup", help="Warm-up requests, not counted.")]
Aggregate = Annotated[
    int,
    typer.Option(
        "--aggregate",
        help=f"Concurrent jobs for the N-slot aggregate (0 = skip; at most {MAX_AGGREGATE}).",
    ),
]
Full = Annotated[bool, typer.Option("--full", help="The seed report's job: 1150 in / 2000 out.")]
TargetCi = Annotated[
    str | None,
    typer.Option("--target-ci", help="Repeat until the 95% CI of median decode is within this (e.g. 2%)."),
]
MaxReps = Annotated[int, typer.Option("--max-reps", help="Most repetitions with --target-ci.")]
RemeasureBusy = Annotated[
    int | None,
    typer.Option(
        "--remeasure-busy",
        help="Most extra repetitions (and, apart, N-slot batches) a lane takes to replace ones measured "
        "while other processes kept the machine busy; default: --reps; 0: mark them, never re-measure.",
    ),
]
JsonOut = Annotated[
    Path | None,
    typer.Option("--json", help="Write everything, raw samples too, to this JSON file, as measured."),
]
Markdown = Annotated[
    Path | None, typer.Option("--markdown", help="Write the tables as markdown to this file.")
]
Plots = Annotated[
    Path | None,
    typer.Option("--plots", help="Also save the run's plots (the envelope's too) as PNG in this folder."),
]
Db = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="LANEBENCH_DB", help="Results database: SQLite path or postgresql://... URL."
    ),
]
NoDb = Annotated[bool, typer.Option("--no-db", help="Do not record this run in the results database.")]
Resume = Annotated[str | None, typer.Option("--resume", help="Measure only the lanes RUN_ID is missing.")]
ServerBin = Annotated[
    Path | None,
    typer.Option(
        "--server-bin", envvar="LANEBENCH_SERVER_BIN", help="llama-server for lanes that name none."
    ),
]
OutDir = Annotated[
    Path | None, typer.Option("--out-dir", help="Server logs go here (default: the user cache dir).")
]
LoadTimeout = Annotated[float, typer.Option("--load-timeout", help="Seconds to wait for a server to listen.")]
NoCheck = Annotated[
    bool, typer.Option("--no-check", help="Skip the draft/head compatibility check before starting.")
]
Baseline = Annotated[
    bool | None,
    typer.Option(
        "--baseline/--no-baseline",
        help="Run the build's llama-bench with every lane's settings (the kernel view) and show "
        "where the time goes between kernels, engine and client (default: on with --full).",
    ),
]
Attribute = Annotated[
    bool,
    typer.Option(
        "--attribute",
        help="After each llama.cpp lane, re-run a few requests of its job on fresh servers with one "
        "known suspect switched off at a time (prompt cache, idle-slot saving, context checkpoints, "
        "cache reuse, the sampler chain), plus the lane as it runs before and after; a cause is named "
        "in 'Where the Time Goes' only when its switch moved the figure beyond the noise. Not implied "
        "by --baseline or --full (it costs a server start and the requests per suspect).",
    ),
]
AttributeReps = Annotated[
    int,
    typer.Option(
        "--attribute-reps",
        help="Requests per server of --attribute (after one warm-up); a cause needs at least 3 on "
        "each side, and with 5 a chance separation of the ranges has odds 2 in 3,003.",
    ),
]
NoFitCheck = Annotated[
    bool,
    typer.Option(
        "--no-fit-check",
        help="Skip the memory check before starting (a lane whose GGUF estimate, placed per "
        "device as its server would, exceeds a device's free memory or RAM is refused).",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan (servers, argv, requests) and exit.")]
NoReuse = Annotated[
    bool, typer.Option("--no-reuse", help="Start a server for every lane, even when lanes could share one.")
]
Grid = Annotated[
    list[str],
    typer.Option(
        "--grid",
        help="FIELD=V1,V2,... over a lane field, e.g. 'draft.block_size=2,3,4' "
        "(repeatable: cartesian product).",
    ),
]
Quality = Annotated[
    bool,
    typer.Option(
        "--quality",
        help="Also score every lane against the reference lane with the build's llama-perplexity "
        "(KLD, same top-1, PPL); see docs/quality.md.",
    ),
]
Reference = Annotated[
    str | None,
    typer.Option(
        "--reference",
        help="The lane others are compared with (default: the lane marked reference = true, else the "
        "widest weights with F16 KV).",
    ),
]
QualityTokens = Annotated[
    int,
    typer.Option(
        "--quality-tokens",
        help="Tokens to score for quality (fewer if free disk or memory is short; the base file takes "
        "about 0.5 MB a token for a 262,144-token vocabulary).",
    ),
]

Depth = Annotated[
    str | None,
    typer.Option(
        "--depth",
        help="Map the envelope at these context depths: tokens of conversation the server already "
        "holds before each request, e.g. 0,4096,32768.",
    ),
]
Concurrency = Annotated[
    str | None,
    typer.Option("--concurrency", help="Map the envelope at these numbers of streams at once, e.g. 1,2,4,8."),
]
Budget = Annotated[
    float | None,
    typer.Option(
        "--budget",
        help="Minutes the envelope's measuring may take; each cell's repetitions are chosen to fit "
        "(at least 2, at most --max-reps).",
    ),
]
