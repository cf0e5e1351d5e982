"""Shared CLI pieces: consoles, the one-line error convention."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    if not c.is_terminal:  # piped or redirected: wide enough that tables stay tables
        c = Console(stderr=stderr, width=200)
    return c


console = _console()
err_console = _console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print ``lanebench: error: ...`` lines to stderr and exit with ``code``."""
    for line in message.splitlines() or [""]:
        err_console.print(f"[bold red]lanebench: error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def print_json(data: Any) -> None:
    """Machine output on stdout, nothing else mixed in."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
