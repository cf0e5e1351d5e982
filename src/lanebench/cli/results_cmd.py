"""``lanebench runs``, ``lanebench report`` and ``lanebench compare``: stored results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table as RichTable

from lanebench.cli.common import console, err_console, print_json
from lanebench.records.lane import LaneStatus
from lanebench.report.tables import to_markdown, to_rich
from lanebench.store.sinks import write_atomic

if TYPE_CHECKING:
    from lanebench.store import Store

DB_OPTION = typer.Option(
    None,
    "--db",
    envvar="LANEBENCH_DB",
    help="Results database: SQLite path or postgresql://... URL (default: the user data dir).",
)


def _store(db: str | None) -> Store:
    from lanebench.store import open_store

    return open_store(db)


def runs(
    db: str | None = DB_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List stored runs, newest first: id, date, host, build, lanes, status."""
    rows = _store(db).list_runs()
    if json_out:
        print_json(rows)
        return
    if not rows:
        err_console.print("no runs stored yet (measure some with lanebench run)", highlight=False)
        return
    table = RichTable(title="Stored runs")
    for col in ("Run", "Date", "Host", "Build", "Lanes", "Status"):
        table.add_column(col, no_wrap=col != "Host")
    for r in rows:
        lanes = str(r["lanes"])
        extra = [
            f"{r[k]} {w}" for k, w in (("lanes_failed", "failed"), ("lanes_unfinished", "unfinished")) if r[k]
        ]
        table.add_row(
            r["run_id"],
            str(r["started_at"]).replace("T", " ")[:19],
            str(r["host"] or "–"),
            r["build"],
            lanes + (f" ({', '.join(extra)})" if extra else ""),
            r["status"],
        )
    console.print(table)


def report(
    run_ids: list[str] | None = typer.Argument(None, help="Runs to report (default: the latest)."),
    db: str | None = DB_OPTION,
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="md, csv, json or html (default: from -o's suffix, else md)."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the report to this file."),
    plots: Path | None = typer.Option(None, "--plots", help="Also save every plot as PNG in this folder."),
    bandwidth: str | None = typer.Option(
        None,
        "--bandwidth",
        help="Add the Decode Roofline: ceiling and % reached at this bandwidth, e.g. 256GB/s.",
    ),
    device: str | None = typer.Option(None, "--device", help="Decode Roofline at a known device's peak."),
) -> None:
    """The seed's tables from stored results: Host, Models, Latest Measured Numbers, Draft
    Acceptance, sweeps, Context Against Previous Rows; HTML adds plots."""
    from lanebench.report.data import load_report
    from lanebench.report.render import pick_format, render, report_tables

    chosen = pick_format(fmt, output)
    data = load_report(_store(db), run_ids or [])
    from lanebench.cli.explain_cmd import resolve_bandwidth

    data.bandwidth = resolve_bandwidth(bandwidth, device)
    for rd in data.runs:
        for lane in rd.lanes:
            if lane.status == LaneStatus.FAILED:
                err_console.print(
                    f"[yellow]run {rd.run.run_id}: lane {lane.name!r} failed[/]: {lane.error or '?'} "
                    "(see the Failures table)",
                    highlight=False,
                )
    if output is None and fmt is None and sys.stdout.isatty():
        for t in report_tables(data):
            console.print(to_rich(t))
        if plots is not None:
            from lanebench.report.plots import save_plots

            save_plots(data, plots)
        return
    text = render(data, chosen, plots)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
        err_console.print(f"wrote {chosen} report to {output}", highlight=False)


def compare(
    run_a: str = typer.Argument(..., help="The baseline run (A)."),
    run_b: str = typer.Argument(..., help="The run compared with it (B)."),
    db: str | None = DB_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a markdown table."),
) -> None:
    """Per lane, the ratio B/A of each figure and whether it is beyond the runs' own spread; and,
    where both runs scored quality, B − A of each quality figure with its combined error; where
    both mapped an envelope, the same cell by cell."""
    from lanebench.report.compare import compare_rows, compare_table
    from lanebench.report.envelope_compare import envelope_compare_rows, envelope_compare_table
    from lanebench.report.quality import quality_compare_rows, quality_compare_table

    store = _store(db)
    a, b = store.load_lanes(run_a), store.load_lanes(run_b)
    rows = compare_rows(a, b)
    qrows = quality_compare_rows(a, b)
    erows = envelope_compare_rows(a, b)  # [] unless both runs mapped an envelope of a lane
    if json_out:
        envelope = {"envelope": erows} if erows else {}
        print_json({"a": run_a, "b": run_b, "rows": rows, "quality": qrows, **envelope})
        return
    tables = [compare_table(run_a, run_b, rows)]
    if qrows:
        tables.append(quality_compare_table(run_a, run_b, qrows))
    if erows:
        tables.append(envelope_compare_table(run_a, run_b, erows))
    for table in tables:
        if markdown:
            sys.stdout.write(to_markdown(table))
        else:
            console.print(to_rich(table))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("runs")(runs)
    app.command("report")(report)
    app.command("compare")(compare)
