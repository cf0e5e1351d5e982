"""The report as one self-contained HTML file: tables, and plots embedded as base64 PNG data
URIs. Readable offline; no scripts, no external resources; every stored string is escaped.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from lanebench.report.data import ReportData
from lanebench.report.fmt import Table
from lanebench.report.heading import run_line
from lanebench.report.plots import all_plots

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; white-space: nowrap; }
tr.failed td { background: #fde8e8; }
p.caption, figcaption { color: #666; font-size: 12px; font-style: italic; }
figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def _cell(text: str, index: int) -> str:
    cls = ' class="num"' if index > 0 and text[:1].isdigit() else ""
    return f"<td{cls}>{escape(text)}</td>"


def table_html(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cls = ' class="failed"' if any("FAILED" in c for c in row) else ""
        body.append(f"<tr{cls}>" + "".join(_cell(c, i) for i, c in enumerate(row)) + "</tr>")
    caption = f'<p class="caption">{escape(table.caption)}</p>' if table.caption else ""
    return (
        f"<h2>{escape(table.title)}</h2>\n<table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{caption}"
    )


def figure_html(caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    alt = escape(caption)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'
    )


def to_html(data: ReportData, tables: list[Table], plots_dir: Path | None = None) -> str:
    """The whole page; ``plots_dir`` also receives each plot as a PNG file."""
    plots = all_plots(data)
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        for name, _caption, png in plots:
            (plots_dir / name).write_bytes(png)
    title = "lanebench report: " + ", ".join(data.run_ids)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(run_line(data))}</p>",
    ]
    parts += [table_html(t) for t in tables]
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [figure_html(caption, png) for _name, caption, png in plots]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
