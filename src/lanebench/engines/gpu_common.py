"""What the engines that launch a Python GPU server (vLLM, SGLang) share, and the class they
subclass (``GpuServerEngine``).

- **their ``--help``**: argparse output parsed into an ``ArgparseHelp`` (flags and the choices it
  lists), run once per binary; ``need_flag`` / ``need_value`` refuse, naming the flag, what a
  build does not list.
- **the lane**: ``check_lane`` refuses the fields such a server has no equivalent for
  (``refuse_gpu_server_fields``) and ``extra_args`` that repeat a flag lanebench sets, and
  works out the model and the per-sequence context; ``finish_plan`` makes the ``LanePlan``.
- **the job**: ``tokenize`` (``POST /tokenize``, which both serve) turns the corpus into ids.

``GpuServerEngine.plan`` runs these in order; a subclass says how to find and probe its server,
which flags it owns, and builds its argv. Helpers every launched third-party server needs
(``find_bin``, ``run_text``, reply fields) are in ``engines.common``.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import Endpoint, Engine, LanePlan, PlanContext
from lanebench.engines.common import labelled, refuse_set, slot_ctx
from lanebench.errors import BadInput


def flag_name(flag: str) -> str:
    """``--max_num_seqs`` and ``--max-num-seqs`` are one flag to vLLM's and SGLang's parsers."""
    return flag.replace("_", "-") if flag.startswith("--") else flag


@dataclass(frozen=True, slots=True, eq=False)
class ArgparseHelp:
    """What a Python server's argparse ``--help`` lists: its flags and the choices it names."""

    flags: frozenset[str]
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    version: str | None = None
    command: str = ""  # the command that printed the help, for messages

    def has(self, flag: str) -> bool:
        return flag_name(flag) in self.flags

    def values(self, flag: str) -> tuple[str, ...]:
        """The choices ``--help`` lists for ``flag`` (empty when it lists none)."""
        return self.choices.get(flag_name(flag), ())

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "help": self.command, "flags": len(self.flags)}


_OPTION_LINE = re.compile(r"^  (-{1,2}\w.*)$")  # argparse indents option heads by exactly 2
_OPTION = re.compile(r"(?:^|,\s)(-{1,2}\w[\w.-]*)(?:[ =](\{[^}]*\}|[^\s,]+))?")


def parse_argparse_help(text: str, command: str = "", version: str | None = None) -> ArgparseHelp:
    """The flags (and ``{a,b,c}`` choices) of an argparse ``--help`` text.

    An option's head is the indented line that starts with ``-``; its help text follows after
    two or more spaces or on lines indented further, which are not read."""
    flags: set[str] = set()
    choices: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        m = _OPTION_LINE.match(line.rstrip())
        if not m:
            continue
        head = re.split(r"\s{2,}", m[1], maxsplit=1)[0]
        for opt in _OPTION.finditer(head):
            flag = flag_name(opt[1])
            flags.add(flag)
            meta = opt[2]
            if meta and meta.startswith("{") and meta.endswith("}"):
                choices[flag] = tuple(v.strip() for v in meta[1:-1].split(",") if v.strip())
    return ArgparseHelp(frozenset(flags), choices, version, command)


def check_extra_args(lane: LaneSpec, label: str, owned: Mapping[str, str]) -> None:
    """Refuse ``extra_args`` that repeat a flag lanebench sets from a lane field."""
    for arg in lane.extra_args:
        flag = flag_name(arg.split("=", 1)[0])
        if flag in owned:
            raise BadInput(
                f"{label}: field 'extra_args' sets {flag}, which lanebench sets from {owned[flag]}"
            )


def model_and_name(lane: LaneSpec, label: str, engine: str) -> tuple[str, str]:
    """(what the server loads, the name requests use) from ``model`` and ``served_model``.

    ``model`` is a local folder or file; without it ``served_model`` names what to load
    (a Hugging Face id, which the server then also answers to)."""
    if lane.model is not None:
        if not lane.model.exists():
            raise BadInput(f"{label}: field 'model': {lane.model} does not exist")
        return str(lane.model), lane.served_model or str(lane.model)
    if lane.served_model:
        return lane.served_model, lane.served_model
    raise BadInput(
        f"{label}: field 'model': engine {engine!r} needs a model: a local model folder (or GGUF) "
        "in 'model', or a Hugging Face id in 'served_model'"
    )


def need_flag(help_: ArgparseHelp, flag: str, label: str, what: str, engine: str) -> None:
    """Refuse, naming the flag, when the build's ``--help`` does not list it."""
    if not help_.has(flag):
        raise BadInput(
            f"{label}: {what} needs {flag}, which this {engine} build does not list in "
            f"`{help_.command}` (version {help_.version or 'unknown'}); upgrade it or change the lane"
        )


def need_value(help_: ArgparseHelp, flag: str, value: str, label: str, field_name: str, engine: str) -> None:
    """Refuse a value the build's ``--help`` lists choices for but not this one."""
    values = help_.values(flag)
    if values and value not in values:
        raise BadInput(
            f"{label}: field {field_name!r} = {value!r}: this {engine} build's {flag} takes "
            f"{', '.join(values)}"
        )


def refuse_gpu_server_fields(lane: LaneSpec, label: str, display: str) -> None:
    """Fields a GPU serving engine that lanebench starts has no equivalent for, refused by name
    (engine-only fields it does not take, such as ``url``, are refused by planning)."""
    refuse_set(
        label,
        display,
        {
            "threads": (lane.threads, "leave it empty"),
            "gpu_layers": (lane.gpu_layers, f"{display} keeps the whole model on the GPU; leave it empty"),
            "flash_attn": (
                None if lane.flash_attn == "auto" else lane.flash_attn,
                f"{display} picks its attention backend (--attention-backend in extra_args)",
            ),
        },
    )
    if lane.draft is not None:
        refuse_set(
            label,
            display,
            {
                "draft.p_min": (lane.draft.p_min, "leave it empty"),
                "draft.gpu_layers": (lane.draft.gpu_layers, "leave it empty"),
                "draft.emulate": (lane.draft.emulate, "emulated acceptance is a llama.cpp build flag"),
                "draft.emulate_mean_length": (
                    lane.draft.emulate_mean_length,
                    "emulated acceptance is a llama.cpp build flag",
                ),
            },
        )


def tokenize_body(model: str, text: str) -> dict[str, Any]:
    """vLLM's (and SGLang's) ``POST /tokenize``: the corpus without special tokens."""
    return {"model": model, "prompt": text, "add_special_tokens": False}


def extra_flags(lane: LaneSpec) -> set[str]:
    """The flags the lane's ``extra_args`` set, in the parsers' spelling."""
    return {flag_name(a.split("=", 1)[0]) for a in lane.extra_args}


@dataclass(frozen=True, slots=True)
class CheckedLane:
    """What ``check_lane`` worked out: the label messages use, what the server loads, the name
    requests use and the tokens one sequence may hold."""

    label: str
    model_tag: str
    served: str
    per_slot: int


def check_lane(
    engine: Engine, lane: LaneSpec, ctx: PlanContext, display: str, owned: Mapping[str, str]
) -> CheckedLane:
    """The refusals every lane of a GPU server engine meets before its binary is looked for, in
    this order: fields it has no equivalent for, ``extra_args`` repeating an ``owned`` flag, the
    model, the context."""
    label = f"lane {lane.name!r}"
    refuse_gpu_server_fields(lane, label, display)
    check_extra_args(lane, label, owned)
    model_tag, served = model_and_name(lane, label, engine.name)
    return CheckedLane(label, model_tag, served, slot_ctx(lane, ctx.job, label))


def finish_plan(
    engine: Engine, lane: LaneSpec, checked: CheckedLane, binary: Path, help_: ArgparseHelp, **info: Any
) -> LanePlan:
    """The lane's plan (``info`` added to its build_info), its argv built once so that refusals
    surface before anything starts."""
    plan = LanePlan(
        lane,
        engine,
        checked.per_slot * lane.slots,
        build=str(binary),
        build_info={
            "engine": engine.name,
            **help_.to_dict(),
            "model": checked.served,
            "model_tag": checked.model_tag,
            **info,
        },
        server_bin=binary,
        dialect=help_,
        model=lane.model,
    )
    plan.argv_preview = plan.argv(0)
    return plan


async def tokenize(
    session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan, text: str, *, absent_ok: bool = False
) -> list[int] | None:
    """The corpus as token ids from the server's ``POST /tokenize``; with ``absent_ok``, None
    when the build has no such route (404), else its HTTP error is raised."""
    body = tokenize_body(str(plan.build_info["model"]), text)
    async with session.post(f"{endpoint.base_url}/tokenize", json=body, headers=endpoint.headers()) as resp:
        if absent_ok and resp.status == 404:
            return None
        resp.raise_for_status()
        out = await resp.json()
    return [int(t) for t in out["tokens"]]


class GpuServerEngine(Engine):
    """An engine that launches a Python GPU server whose flags come from its argparse ``--help``.

    ``plan`` refuses what the server has no equivalent for, finds the executable, reads its
    help and builds the argv once (so refusals surface before anything starts); prompts are
    token ids from its ``/tokenize`` (``tokenize_optional``: builds without one take text)."""

    display: ClassVar[str]  # the engine's name in messages ("vLLM")
    tokenize_optional: ClassVar[bool] = False

    @abstractmethod
    def owned(self, lane: LaneSpec) -> dict[str, str]:
        """The server flags lanebench sets from the lane: flag -> what it comes from."""

    @abstractmethod
    def find(self, lane: LaneSpec, label: str) -> Path:
        """The executable that serves the lane (its ``server_bin``, else one on PATH)."""

    @staticmethod
    @abstractmethod
    def probe_help(binary: str, mtime_ns: int) -> ArgparseHelp:
        """The flags ``binary`` lists, read by running it (subclasses cache it per binary and
        mtime); errors are one line without a label."""

    def read_help(self, binary: Path, label: str) -> ArgparseHelp:
        """``probe_help`` of ``binary``, once per binary and mtime whatever lane asks; its errors
        start with ``label``."""
        return labelled(label, self.probe_help, binary)

    def plan_info(self, lane: LaneSpec, help_: ArgparseHelp) -> dict[str, Any]:
        """What else the plan's ``build_info`` keeps for ``argv`` and ``request``."""
        return {}

    def plan(self, lane: LaneSpec, ctx: PlanContext) -> LanePlan:
        checked = check_lane(self, lane, ctx, self.display, self.owned(lane))
        binary = self.find(lane, checked.label)
        help_ = self.read_help(binary, checked.label)
        return finish_plan(self, lane, checked, binary, help_, **self.plan_info(lane, help_))

    async def prompt_ids(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, plan: LanePlan, text: str
    ) -> list[int] | None:
        return await tokenize(session, endpoint, plan, text, absent_ok=self.tokenize_optional)
