"""A llama.cpp build's options as its own ``--help`` lists them, and a lane's arguments read
with them (pure parsing, plus one cached probe per binary).

``llama-server`` and ``llama-perplexity`` share ``common/arg.cpp``: every option is printed as
``-s,    --long HINT`` (a value follows when there is a hint), its help below, ``(env: NAME)``
when an environment variable sets it, under a section line such as
``----- sampling params -----``. The parser takes no ``--flag=value``; ``_`` in a long flag
reads as ``-`` (b11434, ``common_params_parse_ex``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lanebench.errors import LanebenchError

_SECTION_RE = re.compile(r"^-----\s*(.+?)\s+params\s*-----")
_FLAG_RE = re.compile(r"(-[\w.-]+)(,\s+)?")
_ENV_RE = re.compile(r"\(env:\s*([A-Z0-9_]+)\)")
_HELP_COLUMN = 40  # common/arg.cpp pads option heads to this column

# flags that make a llama-server lane draft (the value of --spec-type, unless it is "none");
# names from b11434's --help and the Atomic fork's --mtp-head
DRAFT_SWITCHES = frozenset(
    {
        "-md", "--model-draft", "--spec-draft-model", "--spec-type", "--spec-default",
        "-hfd", "-hfrd", "--hf-repo-draft", "--spec-draft-hf", "--mtp-head",
        "-lcs", "--lookup-cache-static", "-lcd", "--lookup-cache-dynamic",
    }
)  # fmt: skip
DRAFT_ENV = frozenset({"LLAMA_ARG_SPEC_TYPE", "LLAMA_ARG_SPEC_DRAFT_MODEL", "LLAMA_ARG_SPEC_DRAFT_HF_REPO"})


class HelpError(LanebenchError):
    """A binary's ``--help`` could not be read; one line saying why."""


@dataclass(frozen=True, slots=True)
class Option:
    """One option: every spelling, whether a value follows, its environment variable, and the
    section of ``--help`` it stands in (``common``, ``sampling``, ``speculative``, ...)."""

    names: tuple[str, ...]
    takes_value: bool
    env: str | None = None
    section: str = ""

    @property
    def label(self) -> str:
        """The longest spelling, for messages."""
        return max(self.names, key=len)


@dataclass(slots=True)
class Options:
    """A build's options by every spelling and by environment variable."""

    by_flag: dict[str, Option] = field(default_factory=dict)
    by_env: dict[str, Option] = field(default_factory=dict)

    def get(self, flag: str) -> Option | None:
        if flag.startswith("--"):
            flag = flag.replace("_", "-")
        return self.by_flag.get(flag)

    def takes(self, option: Option) -> bool:
        """Whether this build has ``option`` under any of its spellings."""
        return any(n in self.by_flag for n in option.names)


def _head(line: str) -> tuple[tuple[str, ...], str, str]:
    """Spellings and value hint of an option line: a head longer than the column less 3 stands
    alone on its line (arg.cpp breaks the line), else the help starts at the column."""
    beside = len(line) > _HELP_COLUMN and line[_HELP_COLUMN - 3 : _HELP_COLUMN] == "   "
    head = line[:_HELP_COLUMN].rstrip() if beside else line.rstrip()
    names: list[str] = []
    pos = 0
    while m := _FLAG_RE.match(head, pos):
        names.append(m[1])
        pos = m.end()
        if not m[2]:
            break
    return tuple(names), head[pos:].strip(), line[_HELP_COLUMN:] if beside else ""


def parse_options(help_text: str) -> Options:
    """Every option ``help_text`` lists; options whose help says the argument "has been
    removed" are left out (the build refuses them)."""
    out = Options()
    section = ""
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        if m := _SECTION_RE.match(line):
            section = m[1].strip().lower()
            continue
        if not line.startswith("-"):
            continue
        names, hint, first = _head(line)
        if not names:
            continue
        body = [first]
        for nxt in lines[i + 1 :]:
            if not nxt.startswith(" "):
                break
            body.append(nxt)
        text = " ".join(" ".join(body).split())
        if "has been removed" in text:
            continue
        env = _ENV_RE.search(text)
        opt = Option(names, bool(hint), env[1] if env else None, section)
        for name in names:
            out.by_flag[name] = opt
        if opt.env:
            out.by_env[opt.env] = opt
    return out


@lru_cache(maxsize=32)
def _read(binary: Path, mtime_ns: int) -> Options:
    try:
        proc = subprocess.run(
            [str(binary), "--help"], capture_output=True, text=True, timeout=30, errors="replace"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HelpError(f"{binary}: cannot run '--help' ({exc})") from None
    return parse_options(proc.stdout + proc.stderr)


def read_options(binary: Path) -> Options:
    """The options ``binary --help`` lists (read once per binary and modification time)."""
    try:
        mtime = binary.stat().st_mtime_ns
    except OSError as exc:
        raise HelpError(f"{binary}: cannot read it ({exc.strerror or exc})") from None
    return _read(binary, mtime)


@dataclass(frozen=True, slots=True)
class Arg:
    """One flag of an argument list with the value that follows it (``option`` is None for a
    flag the build does not list: its value, if any, cannot be told from the next flag)."""

    flag: str
    value: str | None
    option: Option | None

    @property
    def tokens(self) -> list[str]:
        return [self.flag] if self.value is None else [self.flag, self.value]


def split_args(args: Sequence[str], options: Options) -> list[Arg]:
    """``args`` (a lane's ``extra_args``) as flags with their values, read as ``options`` say;
    a token that is no flag where one is expected becomes an ``Arg`` without an option."""
    out: list[Arg] = []
    i = 0
    while i < len(args):
        opt = options.get(args[i])
        if opt is not None and opt.takes_value and i + 1 < len(args):
            out.append(Arg(args[i], args[i + 1], opt))
            i += 2
        else:
            out.append(Arg(args[i], None, opt))
            i += 1
    return out


def switches_drafting(flag: str, value: str | None) -> bool:
    """Whether ``flag value`` turns speculative decoding on (``--spec-type none`` does not)."""
    if flag.startswith("--"):
        flag = flag.replace("_", "-")
    if flag not in DRAFT_SWITCHES:
        return False
    return flag != "--spec-type" or (value or "").strip().lower() not in ("", "none")


def drafting_args(extra_args: Sequence[str], env: dict[str, str]) -> bool:
    """Whether ``extra_args`` or ``env`` turn speculative decoding on (no ``--help`` needed:
    every switch but ``--spec-default`` takes one value)."""
    for i, flag in enumerate(extra_args):
        nxt = extra_args[i + 1] if i + 1 < len(extra_args) else None
        if switches_drafting(flag, nxt):
            return True
    for name, value in env.items():
        off = name == "LLAMA_ARG_SPEC_TYPE" and value.strip().lower() in ("", "none")
        if name in DRAFT_ENV and not off:
            return True
    return False
