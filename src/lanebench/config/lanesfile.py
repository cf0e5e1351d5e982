"""Reading a lanes file: ``[defaults]`` merged into each ``[[lane]]``, every problem one line
naming the lane and field, nothing started when any lane is wrong; an optional ``[job]`` table
gives the job the lanes are measured with (``RunConfig``'s job fields; flags override it)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)

from lanebench.config.inputs import load_toml, show
from lanebench.config.lanes import LaneSpec
from lanebench.errors import BadInput

MAX_FILE = 4 << 20  # bytes of a lanes file


MAX_LINES = 20  # problems listed before "... and N more"


class LanesFile(BaseModel):
    """The whole file after defaults have been merged into each lane."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lanes: list[LaneSpec]


_MERGED = ("draft", "env")  # tables a lane merges over [defaults] one level deep


def _merge(defaults: dict[str, Any], lane: dict[str, Any]) -> dict[str, Any]:
    """A lane over its defaults; tables (draft, env) merge one level deep."""
    out = {**defaults, **lane}
    for key in _MERGED:
        if isinstance(defaults.get(key), dict) and isinstance(lane.get(key), dict):
            out[key] = {**defaults[key], **lane[key]}
    return out


def _part(p: Any) -> str:
    return p if isinstance(p, str) and p.isprintable() and len(p) <= 64 else show(p)


def _loc(err: Any) -> str:
    return ".".join(_part(p) for p in err["loc"])


def _lane_label(raw: dict[str, Any], index: int) -> str:
    name = raw.get("name")
    return f"lane {show(name)}" if isinstance(name, str) else f"lane #{index + 1}"


def _from_defaults(loc: tuple[Any, ...], lane: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Whether the value an error points at came from ``[defaults]`` rather than the lane."""
    if not loc:
        return False
    key = loc[0]
    if key not in lane:
        return key in defaults
    inner, outer = lane[key], defaults.get(key)
    if key in _MERGED and len(loc) > 1 and isinstance(inner, dict) and isinstance(outer, dict):
        return loc[1] not in inner and loc[1] in outer
    return False


def cap_lines(problems: list[str]) -> str:
    """``problems`` one per line, at most MAX_LINES of them and then a line counting the rest."""
    shown = problems[:MAX_LINES]
    if len(problems) > MAX_LINES:
        shown.append(f"... and {len(problems) - MAX_LINES} more problems")
    return "\n".join(shown)


def _table_problems(data: dict[str, Any], source: str) -> tuple[list[str], dict[str, Any], list[Any]]:
    """Problems of the file's shape, its [defaults] table and its [[lane]] list."""
    problems = [
        f"{source}: unknown table {show(k)} (expected [job], [defaults] and [[lane]])"
        for k in sorted(set(data) - {"job", "defaults", "lane"})
    ]
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(f"{source}: [defaults] must be a table")
        defaults = {}
    if "name" in defaults:
        problems.append(f"{source}: [defaults] cannot set 'name' (each lane names itself)")
    raw_lanes = data.get("lane", [])
    if not isinstance(raw_lanes, list) or not raw_lanes:
        problems.append(f"{source}: no [[lane]] entries")
        raw_lanes = []
    return problems, defaults, raw_lanes


def parse_lanes(data: dict[str, Any], source: str, base: Path) -> list[LaneSpec]:
    """Validate a parsed lanes document; raise ``BadInput`` with one line per problem.

    A bad value in ``[defaults]`` is one line naming ``[defaults]``, however many lanes it
    reaches; more than MAX_LINES problems end in a line counting the rest."""
    problems, defaults, raw_lanes = _table_problems(data, source)
    from_defaults: dict[str, None] = {}  # ordered set of [defaults] lines
    lanes: list[LaneSpec] = []
    for i, raw in enumerate(raw_lanes):
        if not isinstance(raw, dict):
            problems.append(f"{source}: lane #{i + 1} must be a table")
            continue
        try:
            lanes.append(LaneSpec.model_validate(_merge(defaults, raw), context={"base": base}))
        except ValidationError as exc:
            label = _lane_label(raw, i)
            for err in exc.errors():
                if _from_defaults(err["loc"], raw, defaults):
                    from_defaults[f"{source}: [defaults]: field '{_loc(err)}': {err['msg']}"] = None
                else:
                    problems.append(f"{source}: {label}: field '{_loc(err)}': {err['msg']}")
    counts = Counter(lane.name for lane in lanes)
    problems += [
        f"{source}: lane name {show(n)} is used twice" for n in sorted(n for n, c in counts.items() if c > 1)
    ]
    problems = [*from_defaults, *problems]
    if problems:
        raise BadInput(cap_lines(problems))
    return lanes


def _read(path: Path) -> dict[str, Any]:
    """The lanes file's TOML (at most MAX_FILE bytes); one line naming the file when it cannot be read."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise BadInput(f"{path}: lanes file not found") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise BadInput(f"{path}: cannot read lanes file ({exc})") from None
    if len(data) > MAX_FILE:
        raise BadInput(f"{path}: cannot read lanes file (larger than {MAX_FILE:,} bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: cannot read lanes file ({exc})") from None
    return load_toml(text, str(path))


def job_table(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The file's ``[job]`` table ({} when absent), its keys checked against the job's fields
    (their values are checked by ``RunConfig.under_file``)."""
    from lanebench.config.run import JOB_FIELDS

    job = data.get("job", {})
    if not isinstance(job, dict):
        raise BadInput(f"{source}: [job] must be a table")
    unknown = sorted(set(job) - set(JOB_FIELDS))
    if unknown:
        raise BadInput(
            f"{source}: [job]: unknown key {show(unknown[0])} (expected one of {', '.join(JOB_FIELDS)})"
        )
    return dict(job)


def load_lanes_file(path: Path) -> tuple[list[LaneSpec], dict[str, Any]]:
    """The file's lanes and its ``[job]`` table, both validated."""
    data = _read(path)
    job = job_table(data, str(path))
    return parse_lanes(data, str(path), path.resolve().parent), job


def load_lanes(path: Path) -> list[LaneSpec]:
    """Read and validate a lanes TOML file (at most MAX_FILE bytes)."""
    return load_lanes_file(path)[0]
