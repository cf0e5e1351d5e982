"""A stored report in each format: markdown (the seed's tables), CSV (one row per lane and
figure), JSON (runs, fingerprints, raw samples and the tables), HTML (tables and plots).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lanebench.config.job import JobSpec
from lanebench.errors import BadInput
from lanebench.records.figures import SPEED
from lanebench.records.lane import LaneResult
from lanebench.report.data import ReportData
from lanebench.report.envelope import CSV_COLUMNS as CELLS
from lanebench.report.envelope import csv_cell_rows, envelope_doc, envelope_lanes, envelope_tables
from lanebench.report.envelope_across import across_runs_tables
from lanebench.report.fmt import Table
from lanebench.report.heading import run_line
from lanebench.report.memory import CSV_COLUMNS as MEMORY
from lanebench.report.memory import device_table, memory_cells, memory_table
from lanebench.report.placement import CSV_COLUMNS as PLACEMENT
from lanebench.report.placement import placement_cells, placement_table
from lanebench.report.quality import quality_table
from lanebench.report.sections import context_table, failures_table, host_table, models_table, sweep_tables
from lanebench.report.tables import draft_acceptance, latest_numbers, to_markdown
from lanebench.report.views import attribution_table, time_table

FORMATS = ("md", "csv", "json", "html")
_SUFFIXES = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json", ".html": "html", ".htm": "html"}
BUSY = ("busy_windows", "windows", "busy_max_cores", "busy_figures")
FIGURES = tuple(str(f) for f in SPEED)  # CSV columns: every speed figure, in the table's order
QUALITY = ("quality_status", "quality_reference", "quality_tokens", "ppl", "ppl_err", "kld_mean", "kld_err",
           "kld_p99", "kld_max", "same_top1", "same_top1_err", "rms_dp", "rms_dp_err", "greedy",
           "partner", "greedy_checked", "greedy_tokens", "greedy_same", "divergence_request",
           "divergence_token")  # fmt: skip


def pick_format(fmt: str | None, output: Path | None) -> str:
    """``--format`` if given, else from ``-o``'s suffix, else markdown."""
    if fmt is not None:
        f = fmt.lower().lstrip(".")
        if f not in FORMATS:
            raise BadInput(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        return f
    if output is not None and output.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[output.suffix.lower()]
    return "md"


def lane_tables(lanes: Sequence[LaneResult], job: JobSpec) -> list[Table]:
    """The tables of one run's lanes, as a run prints them and a report shows them: Latest
    Measured Numbers, then those the lanes have figures for (acceptance, quality, memory, memory
    per device, placement, where the time goes, attribution), then the envelope's when a lane
    mapped one (``report.envelope``)."""
    optional = (
        draft_acceptance(lanes),
        quality_table(lanes),
        memory_table(lanes),
        device_table(lanes),
        placement_table(lanes),
        time_table(lanes, job),
        attribution_table(lanes),
    )
    return [latest_numbers(lanes, job), *(t for t in optional if t is not None), *envelope_tables(lanes, job)]


def report_tables(data: ReportData) -> list[Table]:
    """Host, Models, then per run Latest Measured Numbers, Draft Acceptance and sweeps, then
    Context Against Previous Rows and Failures."""
    tables = [host_table(data), models_table(data)]
    many = len(data.runs) > 1
    for rd in data.runs:
        per_run = lane_tables(rd.lanes, rd.run.job)
        per_run += sweep_tables(rd.lanes)
        if data.bandwidth:
            from lanebench.report.roofline import ceilings_table

            per_run.append(ceilings_table(rd.run.job, rd.lanes, data.bandwidth))
        for t in per_run:
            if many:
                t.title = f"{t.title} ({rd.run.run_id})"
        tables += per_run
    if many:
        tables += across_runs_tables(data)
    tables += [t for t in (context_table(data), failures_table(data)) if t is not None]
    return tables


def to_md(data: ReportData) -> str:
    head = f"# lanebench report\n\n{run_line(data)}\n\n"
    return head + "\n".join(to_markdown(t) for t in report_tables(data))


def _acceptance_source(lane: LaneResult) -> str:
    """'emulated' (the build's --spec-synth-*), 'measured', or '' for a lane that drafts nothing."""
    if lane.lane.emulated:
        return "emulated"
    return "measured" if lane.lane.draft is not None else ""


def to_csv(data: ReportData) -> str:
    """One row per lane: run facts, status, flags, load time and every figure's median/min/max/n;
    where a lane mapped an envelope, the ``cell_*`` columns too and a row per cell after its lane's."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [f"{f}_{part}" for f in FIGURES for part in ("median", "min", "max", "n")]
    head = ["run_id", "started_at", "host", "lane", "status", "flags", "error", "acceptance_source", "load_s"]
    head += [*cols, *QUALITY, *MEMORY, *PLACEMENT, *BUSY]
    cells = any(envelope_lanes(rd.lanes) for rd in data.runs)
    w.writerow(head + list(CELLS) if cells else head)
    for rd in data.runs:
        for lane in rd.lanes:
            figs: list[Any] = []
            for f in FIGURES:
                s = lane.summary.get(f)
                figs += [s.median, s.min, s.max, s.n] if s else ["", "", "", ""]
            row = [
                rd.run.run_id,
                rd.run.started_at,
                rd.run.host.get("hostname", ""),
                lane.name,
                lane.status,
                "; ".join(lane.flags),
                lane.error or "",
                _acceptance_source(lane),
                "" if lane.load_s is None else lane.load_s,
                *figs,
                *_quality_cells(lane),
                *memory_cells(lane.memory),
                *placement_cells(lane),
                *_busy_cells(lane),
            ]
            w.writerow(row + [""] * len(CELLS) if cells else row)
            w.writerows(csv_cell_rows(row[:5], len(row), lane))
    return buf.getvalue()


def _busy_cells(lane: LaneResult) -> list[Any]:
    """Windows measured while the machine was busy / in all, the heaviest load (cores), and
    each figure that had to come from busy windows as ``figure=cores`` (``; `` between)."""
    b = lane.busy
    if b is None:
        return [""] * len(BUSY)
    figures = "; ".join(f"{k}={v:g}" for k, v in b.figures.items())
    return [b.busy_windows, b.windows, b.max_cores, figures]


def _quality_cells(lane: LaneResult) -> list[Any]:
    q = lane.quality
    if q is None:
        return [""] * len(QUALITY)
    d = q.to_dict()
    d["quality_status"], d["quality_reference"], d["quality_tokens"] = q.status, q.reference or "", q.tokens
    return ["" if d.get(k) is None else d[k] for k in QUALITY]


def to_json_doc(data: ReportData) -> dict[str, Any]:
    """Runs with fingerprints and every lane (raw samples too), plus the rendered tables."""
    return {
        "runs": [
            {
                "run": rd.run.to_dict(),
                "fingerprints": rd.fingerprints,
                "lanes": [lane.to_dict() for lane in rd.lanes],
                **({"envelope": env} if (env := envelope_doc(rd.lanes)) else {}),
            }
            for rd in data.runs
        ],
        "tables": [
            {"title": t.title, "headers": t.headers, "rows": t.rows, "caption": t.caption}
            for t in report_tables(data)
        ],
    }


def render(data: ReportData, fmt: str, plots_dir: Path | None = None) -> str:
    """The report as text in ``fmt``; ``plots_dir`` also receives the PNGs."""
    if fmt == "md":
        text = to_md(data)
    elif fmt == "csv":
        text = to_csv(data)
    elif fmt == "json":
        text = json.dumps(to_json_doc(data), indent=2, default=str) + "\n"
    elif fmt == "html":
        from lanebench.report.html import to_html

        return to_html(data, report_tables(data), plots_dir)
    else:
        raise BadInput(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if plots_dir is not None:
        from lanebench.report.plots import save_plots

        save_plots(data, plots_dir)
    return text
