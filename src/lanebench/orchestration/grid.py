"""Grids over lane fields: ``--grid 'draft.block_size=2,3,4'`` expands every lane into one lane
per value (the cartesian product over several grids).

Lanes that differ only in fields a request can carry (``draft.block_size`` →
``speculative.n_max``, ``draft.p_min`` → ``speculative.p_min``) have the same ``server_key``
and may share one server (``measure_lane.LaneMeasurer.measure_group``); ``group_plans`` groups
a run's plans so.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import LanePlan
from lanebench.errors import BadInput

PER_REQUEST = ("draft.block_size", "draft.p_min")
SERVER_ONLY_KEYS = ("name", "notes", "sweep")


def _value(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_grid(spec: str) -> tuple[str, list[Any]]:
    """``'draft.block_size=2,3,4'`` → ``('draft.block_size', [2, 3, 4])``."""
    field, sep, values = spec.partition("=")
    field = field.strip()
    items = [v for v in values.split(",") if v.strip()]
    if not sep or not field or not items:
        raise BadInput(f"--grid {spec!r}: expected FIELD=V1,V2,... (e.g. draft.block_size=2,3,4)")
    top = field.split(".")[0]
    if top not in LaneSpec.model_fields or top in SERVER_ONLY_KEYS:
        raise BadInput(f"--grid {spec!r}: {field!r} is not a lane field you can sweep")
    return field, [_value(v) for v in items]


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        data = data.setdefault(k, {})
    data[keys[-1]] = value


def expand(lanes: Sequence[LaneSpec], grids: Sequence[tuple[str, list[Any]]]) -> list[LaneSpec]:
    """Every lane × every combination of grid values; draft fields skip lanes without a draft."""
    out: list[LaneSpec] = []
    for lane in lanes:
        fields = [(f, vs) for f, vs in grids if not (f.startswith("draft.") and lane.draft is None)]
        for combo in itertools.product(*(vs for _, vs in fields)):
            data = lane.model_dump()
            point = {f: v for (f, _), v in zip(fields, combo, strict=True)}
            for f, v in point.items():
                _set(data, f, v)
            if point:
                label = ", ".join(f"{f}={v}" for f, v in point.items())
                data["name"] = f"{lane.name} [{label}]"
                data["sweep"] = {**lane.sweep, **point}
            try:
                out.append(LaneSpec.model_validate(data))
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                raise BadInput(f"--grid: lane {lane.name!r}: field '{loc}': {err['msg']}") from None
    return out


def server_key(lane: LaneSpec) -> str:
    """Lanes with the same key can share one server if the build takes per-request fields."""
    data = lane.model_dump(mode="json", exclude=set(SERVER_ONLY_KEYS))
    if data.get("draft"):
        data["draft"] = {k: v for k, v in data["draft"].items() if k not in ("block_size", "p_min")}
    return json.dumps(data, sort_keys=True)


def speculative_fields(lane: LaneSpec) -> dict[str, Any]:
    """The request fields that carry a lane's block size and p_min."""
    if lane.draft is None:
        return {}
    fields: dict[str, Any] = {"n_max": lane.draft.block_size - 1}
    if lane.draft.p_min is not None:
        fields["p_min"] = lane.draft.p_min
    return fields


def group_plans(plans: Sequence[LanePlan], reuse: bool = True) -> list[list[LanePlan]]:
    """Plans grouped by server key, in order of first appearance (one per group without reuse)."""
    if not reuse:
        return [[p] for p in plans]
    groups: dict[str, list[LanePlan]] = {}
    for plan in plans:
        key = server_key(plan.lane) if plan.engine.per_request_speculative else f"\0{plan.lane.name}"
        groups.setdefault(key, []).append(plan)
    return list(groups.values())
