"""What a llama-server build understands, learned from its own ``--version`` and ``--help``.

Builds differ: upstream (``--spec-type`` / ``--spec-draft-n-max``), older upstream
(``--draft-max``), and the Atomic fork (``--draft-block-size`` / ``--mtp-head``). lanebench
never assumes; it reads the build's help once and keeps the answer.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from lanebench.errors import BadInput

SpecDialect = Literal["upstream", "atomic", "legacy", "none"]

_VERSION_RE = re.compile(r"version:\s*(?P<version>\S+)\s*\(build (?P<build>\d+)(?:,\s*commit (?P<commit>[^)]*))?\)")


@dataclass(frozen=True, slots=True)
class Dialect:
    """Facts about one build: its version line, flags, and the values it lists."""

    version_text: str
    build: int | None
    commit: str | None
    flags: frozenset[str]
    spec_types: tuple[str, ...] = ()
    kv_types: tuple[str, ...] = ()
    flash_attn_values: tuple[str, ...] = field(default=())

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def speculative(self) -> SpecDialect:
        """Which family of speculative flags the build speaks."""
        if self.has("--draft-block-size"):
            return "atomic"
        if self.has("--spec-draft-n-max"):
            return "upstream"
        if self.has("--draft-max"):
            return "legacy"
        return "none"

    @property
    def can_mtp(self) -> bool:
        """True when the build can draft with an MTP assistant head."""
        if self.speculative == "atomic":
            return self.has("--mtp-head") or "mtp" in self.spec_types
        return self.speculative == "upstream" and "draft-mtp" in self.spec_types

    def to_dict(self) -> dict[str, object]:
        return {
            "version_text": self.version_text,
            "build": self.build,
            "commit": self.commit,
            "speculative": self.speculative,
            "can_mtp": self.can_mtp,
            "spec_types": list(self.spec_types),
            "kv_types": list(self.kv_types),
            "flash_attn_values": list(self.flash_attn_values),
        }


def _option_heads(help_text: str) -> list[tuple[list[str], str]]:
    """Each option line's flag names and the rest of the line (value hint + help)."""
    out: list[tuple[list[str], str]] = []
    for line in help_text.splitlines():
        if not line.startswith("-"):
            continue
        head, _, rest = line.partition("  ")
        names: list[str] = []
        hint = ""
        for part in head.split(", "):
            tok, _, tail = part.strip().partition(" ")
            if tok.startswith("-"):
                names.append(tok)
            if tail:
                hint = tail.strip()
        out.append((names, (hint + "  " + rest).strip()))
    return out


def _allowed_after(help_text: str, flag: str) -> tuple[str, ...]:
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("-") and flag in [p.strip().split(" ")[0] for p in line.split("  ")[0].split(", ")]:
            block = " ".join(lines[i : i + 4])
            m = re.search(r"allowed values:\s*([\w, ]+)", block)
            if m:
                return tuple(v.strip() for v in m[1].split(",") if v.strip())
    return ()


def parse_dialect(version_text: str, help_text: str) -> Dialect:
    """Derive a Dialect from the text a build prints for ``--version`` and ``--help``."""
    flags: set[str] = set()
    spec_types: tuple[str, ...] = ()
    fa_values: tuple[str, ...] = ()
    for names, rest in _option_heads(help_text):
        flags.update(names)
        hint = rest.split("  ")[0].strip()
        if "--spec-type" in names and hint:
            spec_types = tuple(t for t in re.split(r"[,|\[\]<> ]+", hint) if t)
        if "--flash-attn" in names:
            m = re.match(r"\[?([\w|]+)\]?", hint)
            if m and "|" in m[1]:
                fa_values = tuple(m[1].split("|"))
    m = _VERSION_RE.search(version_text)
    return Dialect(
        version_text=version_text.strip().splitlines()[0] if version_text.strip() else "",
        build=int(m["build"]) if m else None,
        commit=(m["commit"] or None) if m else None,
        flags=frozenset(flags),
        spec_types=spec_types,
        kv_types=_allowed_after(help_text, "--cache-type-k"),
        flash_attn_values=fa_values,
    )


def _run(binary: Path, arg: str) -> str:
    try:
        proc = subprocess.run(
            [str(binary), arg], capture_output=True, text=True, timeout=30, errors="replace"
        )
    except OSError as exc:
        raise BadInput(f"{binary}: cannot run it ({exc.strerror or exc})") from None
    except subprocess.TimeoutExpired:
        raise BadInput(f"{binary}: '{arg}' did not finish in 30 s; is it llama-server?") from None
    if proc.returncode == 127 or "error while loading shared libraries" in proc.stderr:
        raise BadInput(f"{binary}: its shared libraries are missing ({proc.stderr.strip()[:200]})")
    return proc.stdout + proc.stderr


@lru_cache(maxsize=32)
def probe(binary: Path) -> Dialect:
    """Run ``--version`` and ``--help`` once per binary and derive its dialect."""
    version_text = _run(binary, "--version")
    help_text = _run(binary, "--help")
    dialect = parse_dialect(version_text, help_text)
    if not {"--port", "--host"} <= dialect.flags or not ({"-m", "--model"} & dialect.flags):
        raise BadInput(
            f"{binary}: does not look like llama-server (its --help lists no --model/--host/--port)"
        )
    return dialect
