"""A lane a llama-server build cannot serve: the error, and the flag check that raises it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lanebench.config.lanes import LaneSpec
from lanebench.errors import BadInput

if TYPE_CHECKING:
    from lanebench.engines.llamacpp.dialect import Dialect


class LaneRefused(BadInput):
    """The build cannot do what the lane asks; the message names the missing flag."""


def need(dialect: Dialect, lane: LaneSpec, *flags: str) -> None:
    """LaneRefused naming the first of ``flags`` the build does not list."""
    for flag in flags:
        if not dialect.has(flag):
            raise LaneRefused(
                f"lane {lane.name!r}: this llama-server build has no {flag} "
                f"({dialect.version_text or 'unknown version'})"
            )
