"""The known suspects of the attribution experiment: llama-server features that may cost time
outside the kernels, each with the one change that switches it off (pure).

``run --attribute`` re-runs a few requests of a lane's job on a fresh server with one suspect
switched off and compares with the lane as it runs (``orchestration.attribute_step`` asks
``LlamaCpp.attribution_suspects``, which is ``suspects_for``). Whether a suspect applies is read
from the build (its ``--help`` lists the flag, and the default it states) and from the lane
(``cache_ram``, ``extra_args``): a suspect the lane has already switched off, or one the build
does not have, is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import Suspects, SuspectVariant, Unavailable
from lanebench.engines.llamacpp.bench_args import split_args
from lanebench.engines.llamacpp.dialect import Dialect

CACHE_RAM = ("-cram", "--cache-ram")
CHECKPOINTS = ("-ctxcp", "--ctx-checkpoints", "--swa-checkpoints")
IDLE_SLOTS = ("--cache-idle-slots", "--no-cache-idle-slots")
GREEDY_CHAIN = "temperature"  # with the job's temperature 0 this alone is argmax: the same tokens


def last_arg(extra_args: Sequence[str], spellings: Sequence[str]) -> tuple[str, list[str]] | None:
    """The last of ``spellings`` in ``extra_args`` with its values ([] for a switch); None if the
    lane does not give it (the server's last word wins, as in llama.cpp's parser)."""
    found = None
    for flag, values in split_args(extra_args):
        if flag in spellings:
            found = (flag, values)
    return found


def _given_int(extra_args: Sequence[str], spellings: Sequence[str], default: str | None) -> int | None:
    """The integer the lane gives for an option, else the build's stated default."""
    given = last_arg(extra_args, spellings)
    return _int(given[1][0] if given[1] else None) if given is not None else _int(default)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def prompt_cache_mib(dialect: Dialect, lane: LaneSpec) -> int | None:
    """The prompt cache the lane's server runs with (MiB; -1 no limit, 0 off), None if unknown."""
    if lane.cache_ram is not None:
        return lane.cache_ram
    return _given_int(lane.extra_args, CACHE_RAM, dialect.default("--cache-ram"))


@dataclass(frozen=True, slots=True)
class Suspect:
    """One feature, the server option that switches it off, and when it applies.

    ``spellings``: every server spelling of the options the change replaces (removed from the
    lane's ``extra_args`` in the variant, so the change is the server's last word)."""

    name: str
    label: str
    flags: tuple[str, ...]  # spellings of the switching flag; the first the build lists is used
    value: str | None  # the flag's value (None: a switch)
    spellings: tuple[str, ...]
    why_not: Callable[[Dialect, LaneSpec], str | None]  # None: applies; else why it does not

    def change(self, dialect: Dialect) -> list[str]:
        flag = dialect.first(*self.flags) or self.flags[-1]
        return [flag] if self.value is None else [flag, self.value]

    def skip_reason(self, dialect: Dialect, lane: LaneSpec) -> str | None:
        if dialect.first(*self.flags) is None:
            return f"this build has no {self.flags[-1]}"
        return self.why_not(dialect, lane)

    def variant(self, dialect: Dialect, lane: LaneSpec) -> LaneSpec:
        """The lane with this suspect switched off, nothing else changed."""
        kept = [
            a
            for flag, vals in split_args(lane.extra_args)
            if flag not in self.spellings
            for a in (flag, *vals)
            if a  # a leading value has no flag ('')
        ]
        update: dict[str, object] = {"extra_args": [*kept, *self.change(dialect)]}
        if set(self.spellings) & set(CACHE_RAM):
            update["cache_ram"] = None
        return lane.model_copy(update=update)


def _prompt_cache(dialect: Dialect, lane: LaneSpec) -> str | None:
    mib = prompt_cache_mib(dialect, lane)
    return "the lane runs without it (cache_ram 0)" if mib == 0 else None


def _idle_slots(dialect: Dialect, lane: LaneSpec) -> str | None:
    if prompt_cache_mib(dialect, lane) == 0:
        return "it needs the prompt cache, which the lane runs without"
    given = last_arg(lane.extra_args, IDLE_SLOTS)
    if given is not None:
        return "the lane switches it off already" if given[0] == "--no-cache-idle-slots" else None
    default = dialect.default("--cache-idle-slots")
    return None if default in (None, "enabled") else f"off by default in this build ({default})"


def _checkpoints(dialect: Dialect, lane: LaneSpec) -> str | None:
    n = _given_int(lane.extra_args, CHECKPOINTS, dialect.default("--ctx-checkpoints"))
    return "the lane runs without them (--ctx-checkpoints 0)" if n == 0 else None


def _cache_reuse(dialect: Dialect, lane: LaneSpec) -> str | None:
    n = _given_int(lane.extra_args, ("--cache-reuse",), dialect.default("--cache-reuse"))
    return None if n else "the lane does not enable it (--cache-reuse 0)"


def _samplers(dialect: Dialect, lane: LaneSpec) -> str | None:
    given = last_arg(lane.extra_args, ("--samplers",))
    chain = given[1][0] if given and given[1] else dialect.default("--samplers")
    return "the lane's chain is temperature alone already" if chain == GREEDY_CHAIN else None


SUSPECTS: dict[str, Suspect] = {}


def register(suspect: Suspect) -> Suspect:
    """Add a suspect; a name used twice is a programming error."""
    if suspect.name in SUSPECTS:
        raise ValueError(f"suspect {suspect.name!r} is registered twice")
    SUSPECTS[suspect.name] = suspect
    return suspect


register(Suspect("prompt_cache", "host-RAM prompt cache", CACHE_RAM, "0", CACHE_RAM, _prompt_cache))
register(
    Suspect(
        "idle_slots",
        "saving idle slots to the prompt cache",
        ("--no-cache-idle-slots",),
        None,
        IDLE_SLOTS,
        _idle_slots,
    )
)
register(Suspect("ctx_checkpoints", "context checkpoints", CHECKPOINTS, "0", CHECKPOINTS, _checkpoints))
register(
    Suspect("cache_reuse", "KV-shift cache reuse", ("--cache-reuse",), "0", ("--cache-reuse",), _cache_reuse)
)
register(
    Suspect(
        "samplers",
        "the sampler chain over the vocabulary",
        ("--samplers",),
        GREEDY_CHAIN,
        ("--samplers", "--sampler-seq", "--sampling-seq"),
        _samplers,
    )
)


def applicable(dialect: Dialect, lane: LaneSpec) -> tuple[list[Suspect], list[tuple[str, str]]]:
    """(the suspects to test for this lane on this build, (name, why not) for the others)."""
    tested: list[Suspect] = []
    skipped: list[tuple[str, str]] = []
    for suspect in SUSPECTS.values():
        why = suspect.skip_reason(dialect, lane)
        if why is None:
            tested.append(suspect)
        else:
            skipped.append((suspect.name, why))
    return tested, skipped


def suspects_for(plan: LanePlan) -> Suspects | Unavailable:
    """``LlamaCpp.attribution_suspects``: each applicable suspect as the lane's plan with it
    switched off (its argv built, so a refusal surfaces now), and why the others are skipped."""
    dialect = plan.dialect
    if not isinstance(dialect, Dialect):
        return Unavailable(f"lane {plan.lane.name!r}: no attribution (its build's flags are unknown)")
    tested, skipped = applicable(dialect, plan.lane)
    out = Suspects(skipped=[list(s) for s in skipped])
    for suspect in tested:
        variant = replace(plan, lane=suspect.variant(dialect, plan.lane))
        variant.argv_preview = variant.argv(0)
        out.variants.append(SuspectVariant(suspect.name, suspect.label, suspect.change(dialect), variant))
    return out
