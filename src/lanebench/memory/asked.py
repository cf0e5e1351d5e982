"""What a lane sets of llama-server's placement, as the server will read it (pure): the
environment's ``LLAMA_ARG_*`` first, then the lane's fields (which lanebench passes as flags),
then ``extra_args`` (last on the command line, so they win). None = left to the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lanebench.config.lanes import LaneSpec
from lanebench.memory.serverdefaults import parse_layers


@dataclass(frozen=True, slots=True)
class Asked:
    gpu_layers: int | None = None  # >= 0 a count; serverdefaults.AUTO / ALL
    draft_gpu_layers: int | None = None
    fit: bool | None = None
    fit_target_mib: tuple[float, ...] | None = None
    split_mode: str | None = None
    tensor_split: tuple[float, ...] | None = None
    main_gpu: int | None = None
    devices: tuple[str, ...] | None = None
    draft_devices: tuple[str, ...] | None = None
    draft_cache_k: str | None = None
    draft_cache_v: str | None = None
    kv_offload: bool | None = None
    overrides: tuple[str, ...] = ()  # flags that place tensors in ways the fit check does not model


# field -> (b11434's spellings of the flag, its environment variable); common/arg.cpp
FLAGS: dict[str, tuple[tuple[str, ...], str]] = {
    "gpu_layers": (("-ngl", "--gpu-layers", "--n-gpu-layers"), "LLAMA_ARG_N_GPU_LAYERS"),
    "draft_gpu_layers": (
        ("-ngld", "--spec-draft-ngl", "--gpu-layers-draft", "--n-gpu-layers-draft"),
        "LLAMA_ARG_N_GPU_LAYERS_DRAFT",
    ),
    "fit": (("-fit", "--fit"), "LLAMA_ARG_FIT"),
    "fit_target_mib": (("-fitt", "--fit-target"), "LLAMA_ARG_FIT_TARGET"),
    "split_mode": (("-sm", "--split-mode"), "LLAMA_ARG_SPLIT_MODE"),
    "tensor_split": (("-ts", "--tensor-split"), "LLAMA_ARG_TENSOR_SPLIT"),
    "main_gpu": (("-mg", "--main-gpu"), "LLAMA_ARG_MAIN_GPU"),
    "devices": (("-dev", "--device"), "LLAMA_ARG_DEVICE"),
    "draft_devices": (("-devd", "--spec-draft-device", "--device-draft"), ""),
    "draft_cache_k": (
        ("-ctkd", "--spec-draft-type-k", "--cache-type-k-draft"),
        "LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_K",
    ),
    "draft_cache_v": (
        ("-ctvd", "--spec-draft-type-v", "--cache-type-v-draft"),
        "LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_V",
    ),
}
SWITCHES = {"-kvo": True, "--kv-offload": True, "-nkvo": False, "--no-kv-offload": False}
OVERRIDES = frozenset(
    {"-ot", "--override-tensor", "-cmoe", "--cpu-moe", "-ncmoe", "--n-cpu-moe", "-ncffn", "--n-cpu-ffn"}
)  # the draft's own (-otd, -cmoed...) move only draft tensors; its share is small
_BY_FLAG = {flag: name for name, (flags, _) in FLAGS.items() for flag in flags}
_TRUE, _FALSE = {"on", "1", "true", "yes", "enabled"}, {"off", "0", "false", "no", "disabled"}


def _numbers(text: str) -> tuple[float, ...] | None:
    try:
        return tuple(float(p) for p in text.replace("/", ",").split(",") if p.strip())
    except ValueError:
        return None


def _value(name: str, text: str) -> Any:
    """The field's value of a flag's text; None when the server would not take it either."""
    text = text.strip()
    if name in ("gpu_layers", "draft_gpu_layers"):
        return parse_layers(text)
    if name == "fit":
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else None
    if name in ("fit_target_mib", "tensor_split"):
        return _numbers(text)
    if name == "main_gpu":
        return int(text) if text.isdigit() else None
    if name in ("devices", "draft_devices"):
        return tuple(p.strip() for p in text.split(",") if p.strip()) or None
    return text or None


def from_env(env: Mapping[str, str]) -> Asked:
    """The ``LLAMA_ARG_*`` variables of the server's environment."""
    found: dict[str, Any] = {}
    for name, (_, var) in FLAGS.items():
        if var and var in env and (v := _value(name, env[var])) is not None:
            found[name] = v
    if "LLAMA_ARG_KV_OFFLOAD" in env:
        found["kv_offload"] = _value("fit", env["LLAMA_ARG_KV_OFFLOAD"])
    return Asked(**found)


def from_args(base: Asked, args: Sequence[str]) -> Asked:
    """``base`` with the flags of ``args`` applied in order (a later flag wins)."""
    found: dict[str, Any] = {}
    overrides = list(base.overrides)
    for i, arg in enumerate(args):
        if arg in SWITCHES:
            found["kv_offload"] = SWITCHES[arg]
        elif arg in OVERRIDES:
            overrides.append(arg)
        elif arg in _BY_FLAG and i + 1 < len(args):
            name = _BY_FLAG[arg]
            if (v := _value(name, args[i + 1])) is not None:
                found[name] = v
    return replace(base, **found, overrides=tuple(dict.fromkeys(overrides)))


def lane_fields(lane: LaneSpec) -> dict[str, Any]:
    """The lane's own placement fields, as the flags lanebench passes for them."""
    draft = lane.draft
    found = {
        "gpu_layers": parse_layers(str(lane.gpu_layers)) if lane.gpu_layers is not None else None,
        "draft_gpu_layers": parse_layers(str(draft.gpu_layers))
        if draft is not None and draft.gpu_layers is not None
        else None,
        "split_mode": lane.split_mode,
        "tensor_split": tuple(lane.tensor_split) if lane.tensor_split is not None else None,
        "main_gpu": lane.main_gpu,
        "devices": tuple(lane.devices) if lane.devices is not None else None,
        "draft_devices": tuple(draft.devices) if draft is not None and draft.devices else None,
    }
    return {k: v for k, v in found.items() if v is not None}


def asked_of(lane: LaneSpec, env: Mapping[str, str]) -> Asked:
    """What the lane's server will be told: ``env`` (its whole environment), the lane's fields,
    then its ``extra_args``."""
    base = replace(from_env(env), **lane_fields(lane))
    return from_args(base, lane.extra_args)
