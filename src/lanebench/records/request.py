"""What a lane's requests said (``SentRequest``): the standard job's request as sent, the prompt
left out, and notes on what the server refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lanebench.records.codec import Record


@dataclass(slots=True)
class SentRequest(Record):
    """The request path, its JSON body with the prompt replaced by ``<prompt: N tokens>``, and
    the engine's notes on fields the server does not honour (``Request.notes``)."""

    path: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
