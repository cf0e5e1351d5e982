"""A table as plain strings: a title, headers, rows and a caption.

Below ``report`` so that figures computed outside it (``ceilings``) can hand over a table;
``report.tables`` renders it (markdown, terminal) and ``report.html`` as HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""
