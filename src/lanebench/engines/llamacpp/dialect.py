"""What a llama-server build understands, learned from its own ``--version`` and ``--help``.

Builds differ: upstream (``--spec-type`` / ``--spec-draft-n-max``), older upstream
(``--draft-max``), and the Atomic fork (``--draft-block-size`` / ``--mtp-head``); each family of
speculative flags is a registered class in ``engines/specflags.py``. lanebench never assumes;
it reads the build's help once and keeps the answer.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lanebench.engines.llamacpp import specflags
from lanebench.engines.llamacpp.specflags import SpecFlags
from lanebench.errors import BadInput

_VERSION_RE = re.compile(
    r"version:\s*(?P<version>\S+)\s*"
    r"\((?:build (?P<build>\d+)(?:,\s*commit (?P<commit>[^)]*))?|(?P<hash>[0-9a-f]+))\)"
)


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
    split_modes: tuple[str, ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()  # (flag, the default its help states), every spelling

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def default(self, flag: str) -> str | None:
        """The default ``flag``'s help states (``(default: 8192, ...)`` → ``'8192'``), or None."""
        return next((v for f, v in self.defaults if f == flag), None)

    @property
    def spec_flags(self) -> SpecFlags:
        """The family of speculative flags the build speaks (its draft arguments, p_min flag)."""
        return specflags.detect(self)

    @property
    def speculative(self) -> str:
        """The name of that family: upstream, atomic, legacy or none."""
        return self.spec_flags.name

    @property
    def can_mtp(self) -> bool:
        """True when the build can draft with an MTP assistant head."""
        return self.spec_flags.can_mtp(self)

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
            "split_modes": list(self.split_modes),
            "defaults": {f: v for f in RECORDED_DEFAULTS if (v := self.default(f)) is not None},
        }

    def first(self, *flags: str) -> str | None:
        """The first of ``flags`` this build lists (spellings differ between builds)."""
        return next((f for f in flags if self.has(f)), None)


# Server settings a lane may leave at the build's default that change what lanebench measures:
# the run records the build's defaults for them (``to_dict``, kept with the run's builds).
RECORDED_DEFAULTS = ("--cache-ram", "--ctx-checkpoints", "--cache-idle-slots", "--cache-reuse", "--samplers")
_DEFAULT_RE = re.compile(r"\(default:\s*([^,)\s][^,)]*)")
_FLAG_RE = re.compile(r"(-[\w-]+)(,\s+)?")
_HELP_COLUMN = 40  # llama.cpp pads option heads to this column (common/arg.cpp to_string)


def _split_head(line: str) -> tuple[str, str]:
    """An option line's head (flags and value hint) and the help text after it."""
    if len(line) > _HELP_COLUMN and line[_HELP_COLUMN - 1] == " ":
        return line[:_HELP_COLUMN].rstrip(), line[_HELP_COLUMN:].strip()
    return line.rstrip(), ""


def _option_heads(help_text: str) -> list[tuple[list[str], str, str]]:
    """For each option: its flag names, its value hint, and its help (first lines joined)."""
    out: list[tuple[list[str], str, str]] = []
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("-"):
            continue
        head, help_ = _split_head(line)
        names: list[str] = []
        pos = 0
        while m := _FLAG_RE.match(head, pos):
            names.append(m[1])
            pos = m.end()
            if not m[2]:
                break
        hint = head[pos:].strip()
        following = []
        for nxt in lines[i + 1 : i + 5]:
            if not nxt.startswith(" "):
                break
            following.append(nxt.strip())
        out.append((names, hint, " ".join([help_, *following]).strip()))
    return out


def parse_version_line(text: str) -> tuple[str, int | None, str | None] | None:
    """``(version, build, commit)`` from ``--version`` text; None if it has no version line.

    Today's builds print ``version: V (build N, commit C)``; older ones ``version: N (hash)``.
    """
    m = _VERSION_RE.search(text)
    if not m:
        return None
    if m["build"]:
        build: int | None = int(m["build"])
    else:
        build = int(m["version"]) if m["version"].isdigit() else None
    commit = (m["commit"] or m["hash"] or "").strip() or None
    return m["version"], build, commit


def parse_dialect(version_text: str, help_text: str) -> Dialect:
    """Derive a Dialect from the text a build prints for ``--version`` and ``--help``.

    Flags whose help says "the argument has been removed" are not counted as present.
    """
    flags: set[str] = set()
    spec_types: tuple[str, ...] = ()
    kv_types: tuple[str, ...] = ()
    fa_values: tuple[str, ...] = ()
    split_modes: tuple[str, ...] = ()
    defaults: list[tuple[str, str]] = []
    for names, hint, help_ in _option_heads(help_text):
        if "has been removed" in help_:
            continue
        flags.update(names)
        if m := _DEFAULT_RE.search(help_):
            defaults += [(n, m[1].strip()) for n in names]
        if "--spec-type" in names and hint:
            spec_types = tuple(t for t in re.split(r"[,|\[\]<>{} ]+", hint) if t)
        if "--cache-type-k" in names:
            m = re.search(r"allowed values:\s*([\w, ]+)", help_)
            if m:
                kv_types = tuple(v.strip() for v in m[1].split(",") if v.strip())
        if "--flash-attn" in names:
            m = re.match(r"\[?([\w|]+)\]?", hint)
            if m and "|" in m[1]:
                fa_values = tuple(m[1].split("|"))
        if "--split-mode" in names and hint.startswith("{"):
            split_modes = tuple(v for v in hint.strip("{}").split(",") if v)
    _, build, commit = parse_version_line(version_text) or (None, None, None)
    return Dialect(
        version_text=version_text.strip().splitlines()[0] if version_text.strip() else "",
        build=build,
        commit=commit,
        flags=frozenset(flags),
        spec_types=spec_types,
        kv_types=kv_types,
        flash_attn_values=fa_values,
        split_modes=split_modes,
        defaults=tuple(defaults),
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
