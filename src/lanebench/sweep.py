"""Sweeps: grids over lane fields, run with as few server starts as the build allows.

``--grid 'draft.block_size=2,3,4'`` expands every lane into one lane per value (the cartesian
product over several grids). Lanes that differ only in fields a request can carry
(``draft.block_size`` → ``speculative.n_max``, ``draft.p_min`` → ``speculative.p_min``) share
one server when the build honours those request fields; the build is asked, not assumed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import ValidationError

from lanebench.errors import BadInput, LaneFailed
from lanebench.lanes import LaneSpec
from lanebench.records import LaneResult
from lanebench.runner import (
    LanePlan,
    Progress,
    RunOptions,
    _Recorder,
    _run_job,
    _server_for,
    measure_plan,
)
from lanebench.sinks import RunInfo, Sink

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


def group_plans(plans: Sequence[LanePlan]) -> list[list[LanePlan]]:
    """Plans grouped by server key, in order of first appearance."""
    groups: dict[str, list[LanePlan]] = {}
    for plan in plans:
        groups.setdefault(server_key(plan.lane), []).append(plan)
    return list(groups.values())


def speculative_fields(lane: LaneSpec) -> dict[str, Any]:
    """The request fields that carry a lane's block size and p_min."""
    if lane.draft is None:
        return {}
    fields: dict[str, Any] = {"n_max": lane.draft.block_size - 1}
    if lane.draft.p_min is not None:
        fields["p_min"] = lane.draft.p_min
    return fields


async def _echoes_n_max(base_url: str, n_max: int) -> bool:
    body = {"prompt": [1, 2, 3], "n_predict": 1, "cache_prompt": False, "speculative.n_max": n_max}
    async with aiohttp.ClientSession() as session, session.post(f"{base_url}/completion", json=body) as resp:
        if resp.status != 200:
            return False
        data = await resp.json()
    settings = data.get("generation_settings") or {}
    return settings.get("speculative.n_max") == n_max


def supports_per_request(base_url: str) -> bool:
    """True when the server echoes a per-request ``speculative.n_max`` (so it honours it)."""
    try:
        return asyncio.run(_echoes_n_max(base_url, 1)) and asyncio.run(_echoes_n_max(base_url, 2))
    except (aiohttp.ClientError, ValueError):
        return False


def _widest(plans: Sequence[LanePlan]) -> LanePlan:
    """The group's server plan: the largest block size, so every point's n_max fits.

    The group's plans were all resolved and checked already and differ only in request fields,
    so this re-uses the first one's binary, dialect, model and context instead of re-planning.
    """
    first = plans[0]
    if first.lane.draft is None:
        return first
    widest = max(p.lane.draft.block_size for p in plans if p.lane.draft)
    draft = first.lane.draft.model_copy(update={"block_size": widest, "p_min": None})
    plan = replace(first, lane=first.lane.model_copy(update={"draft": draft}))
    plan.argv_preview = plan.argv(0)
    return plan


_SUPPORT: dict[str, bool] = {}  # per-request support, per binary, learned once per process


def per_request_support(binary: Path | str) -> bool | None:
    """Whether ``binary`` honours per-request speculative fields; None if not asked yet."""
    return _SUPPORT.get(str(binary))


def _run_on(
    server: Any,
    plans: Sequence[LanePlan],
    run: RunInfo,
    opts: RunOptions,
    sinks: Sequence[Sink],
    progress: Progress | None,
    per_request: bool,
) -> list[LaneResult]:
    results: list[LaneResult] = []
    for plan in plans:
        rec = _Recorder(plan, run, sinks, opts.job, progress)
        try:
            _run_job(server, rec, opts, speculative_fields(plan.lane) if per_request else None)
            results.append(rec.finish(server.log_tail(200)))
        except LaneFailed as exc:
            rec.fail(exc, server.log_tail())
            results.append(rec.finish(server.log_tail()))
            break
    return results


def measure_group(
    plans: Sequence[LanePlan],
    run: RunInfo,
    opts: RunOptions,
    sinks: Sequence[Sink],
    progress: Progress | None = None,
) -> tuple[list[LaneResult], int]:
    """Measure a group on one server if the build allows, else one server each.

    The shared server is started for the widest block size; if the build turns out to ignore
    per-request fields, it still serves the point it was started for. Returns the results (in
    the group's order) and how many servers were started.
    """
    binary = str(plans[0].server_bin)
    if len(plans) == 1 or _SUPPORT.get(binary) is False:
        return [measure_plan(p, run, opts, sinks, progress) for p in plans], len(plans)
    widest = _widest(plans)
    server = _server_for(widest, run, opts, plans[0].lane.name + " (shared)")
    done: dict[str, LaneResult] = {}
    try:
        with server:
            supported = _SUPPORT.setdefault(binary, supports_per_request(server.base_url))
            same = [p for p in plans if p.argv(0) == widest.argv(0)]
            mine = list(plans) if supported else same[:1]
            done = {r.name: r for r in _run_on(server, mine, run, opts, sinks, progress, supported)}
    except LaneFailed:
        pass
    rest = [p for p in plans if p.lane.name not in done]
    done |= {p.lane.name: measure_plan(p, run, opts, sinks, progress) for p in rest}
    return [done[p.lane.name] for p in plans], 1 + len(rest)
