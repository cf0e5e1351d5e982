"""The first check on a path the user gave as a GGUF: it exists, is a readable file and starts
with the GGUF magic. Anything else is one ``BadInput`` line naming what the path was for.
"""

from __future__ import annotations

from pathlib import Path

from lanebench.errors import BadInput

GGUF_MAGIC = b"GGUF"


def check_gguf_file(path: Path, what: str) -> None:
    """Raise BadInput unless ``path`` is a readable file that starts with the GGUF magic."""
    if not path.exists():
        raise BadInput(f"{what}: {path} does not exist")
    if not path.is_file():
        raise BadInput(f"{what}: {path} is not a file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise BadInput(f"{what}: cannot read {path} ({exc.strerror})") from None
    if magic != GGUF_MAGIC:
        raise BadInput(f"{what}: {path} is not a GGUF file (starts with {magic!r}, expected b'GGUF')")
