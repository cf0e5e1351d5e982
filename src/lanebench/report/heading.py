"""The line under a report's title that names its runs (markdown and HTML both show it)."""

from __future__ import annotations

from lanebench.report.data import ReportData


def run_line(data: ReportData) -> str:
    """``run 2026… on host, started …, status done``, one per run."""
    return "; ".join(
        f"run {r.run.run_id} on {r.run.host.get('hostname', '?')}, started {r.run.started_at}, "
        f"status {r.run.status}"
        for r in data.runs
    )
