"""The speculative-flag dialects of llama-server builds: one registered class per family.

A build's family is read from its own ``--help`` (``Dialect.spec_flags``): each class says
whether a build speaks it (``speaks``, tried in ``precedence`` order), whether it can draft
with an MTP head, the flags that name a lane's draft and its size, and its p_min flag.
upstream (``--spec-type`` / ``--spec-draft-n-max``), the Atomic fork (``--draft-block-size``
/ ``--mtp-head``), legacy upstream (``--draft-max``), and ``none`` (no speculative flags).
Defining a subclass with a ``name`` registers it; a second one with that name is an error,
and a failed lookup lists what exists. Everything here is pure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.llamacpp.refusal import LaneRefused, need

if TYPE_CHECKING:
    from lanebench.engines.llamacpp.dialect import Dialect


_REGISTRY: dict[str, SpecFlags] = {}


def _register(flags: SpecFlags) -> None:
    if flags.name in _REGISTRY:
        old = _REGISTRY[flags.name]
        raise ValueError(
            f"speculative-flag dialect {flags.name!r} registered twice "
            f"({type(old).__name__} and {type(flags).__name__})"
        )
    _REGISTRY[flags.name] = flags


class SpecFlags:
    """One family of speculative flags. A subclass that sets ``name`` is registered."""

    name: ClassVar[str]
    p_min_flag: ClassVar[str] = ""  # the flag that takes a draft's p_min ("" = none)
    precedence: ClassVar[int] = 100  # lower is tried first when reading a build's --help

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _register(cls())

    def speaks(self, d: Dialect) -> bool:
        """True when the build's flags are this family's."""
        raise NotImplementedError

    def can_mtp(self, d: Dialect) -> bool:
        """True when the build can draft with an MTP assistant head."""
        return False

    def draft_args(self, lane: LaneSpec, draft: Draft, path: Path, d: Dialect) -> list[str]:
        """The flags that name the lane's draft (``path``) and its block size, after the
        shared refusal of an MTP draft on a build that cannot draft with a head."""
        if draft.kind == "mtp" and not self.can_mtp(d):
            raise LaneRefused(
                f"lane {lane.name!r}: field 'draft.kind' = 'mtp' but this build cannot draft with an "
                f"MTP head (no '--spec-type draft-mtp' nor '--mtp-head'; {d.version_text})"
            )
        return self.draft_flags(lane, draft, path, d)

    def draft_flags(self, lane: LaneSpec, draft: Draft, path: Path, d: Dialect) -> list[str]:
        raise NotImplementedError


class Upstream(SpecFlags):
    """Today's llama.cpp: ``-md PATH --spec-type draft-simple|draft-mtp --spec-draft-n-max B-1``."""

    name = "upstream"
    p_min_flag = "--spec-draft-p-min"
    precedence = 20

    def speaks(self, d: Dialect) -> bool:
        return d.has("--spec-draft-n-max")

    def can_mtp(self, d: Dialect) -> bool:
        return "draft-mtp" in d.spec_types

    def draft_flags(self, lane: LaneSpec, draft: Draft, path: Path, d: Dialect) -> list[str]:
        spec = "draft-mtp" if draft.kind == "mtp" else "draft-simple"
        if d.spec_types and spec not in d.spec_types:
            raise LaneRefused(
                f"lane {lane.name!r}: this build's --spec-type lists {', '.join(d.spec_types)}, not {spec}"
            )
        return ["-md", str(path), "--spec-type", spec, "--spec-draft-n-max", str(draft.block_size - 1)]


class Atomic(SpecFlags):
    """The Atomic fork: ``--mtp-head PATH --spec-type mtp`` or ``-md PATH``, ``--draft-block-size B``."""

    name = "atomic"
    p_min_flag = "--draft-p-min"
    precedence = 10  # its builds also list upstream flags

    def speaks(self, d: Dialect) -> bool:
        return d.has("--draft-block-size")

    def can_mtp(self, d: Dialect) -> bool:
        return d.has("--mtp-head") or "mtp" in d.spec_types

    def draft_flags(self, lane: LaneSpec, draft: Draft, path: Path, d: Dialect) -> list[str]:
        if draft.kind == "mtp":
            head = ["--mtp-head", str(path)] if d.has("--mtp-head") else ["-md", str(path)]
            args = [*head, "--spec-type", "mtp"] if d.has("--spec-type") else head
        else:
            args = ["-md", str(path)]
        return [*args, "--draft-block-size", str(draft.block_size)]


class Legacy(SpecFlags):
    """Older upstream builds: ``-md PATH --draft-max B-1``."""

    name = "legacy"
    p_min_flag = "--draft-p-min"
    precedence = 30

    def speaks(self, d: Dialect) -> bool:
        return d.has("--draft-max")

    def draft_flags(self, lane: LaneSpec, draft: Draft, path: Path, d: Dialect) -> list[str]:
        return ["-md", str(path), "--draft-max", str(draft.block_size - 1)]


class NoSpec(SpecFlags):
    """A build without speculative flags: every drafting lane is refused."""

    name = "none"
    precedence = 1000  # the last resort

    def speaks(self, d: Dialect) -> bool:
        return True

    def draft_args(self, lane: LaneSpec, draft: Draft, path: Path, d: Dialect) -> list[str]:
        need(d, lane, "--spec-draft-n-max")
        return []  # pragma: no cover - need() raised: the build lists no --spec-draft-n-max


def unregister(name: str) -> None:
    """Forget a family (a test's toy one)."""
    _REGISTRY.pop(name, None)


def spec_flags(name: str) -> SpecFlags:
    """The family called ``name``; KeyError listing the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"speculative-flag dialect {name!r} is not one of {', '.join(_REGISTRY)}") from None


def detect(d: Dialect) -> SpecFlags:
    """The family a build speaks: the first, by precedence, whose flags its --help lists."""
    ordered = sorted(_REGISTRY.values(), key=lambda f: f.precedence)
    return next(f for f in ordered if f.speaks(d))
