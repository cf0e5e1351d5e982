"""The lanes file: what to measure, validated before anything starts.

A lanes file is TOML with an optional ``[defaults]`` table and ``[[lane]]`` entries. Every
field of a lane may also stand in ``[defaults]``; a lane's own value wins. Paths expand ``~``
and are resolved relative to the lanes file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lanebench.errors import BadInput

FlashAttn = Literal["on", "off", "auto"]


class Draft(BaseModel):
    """A speculative draft: a separate draft model, or an MTP assistant head."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["model", "mtp"] = Field(
        description="'model': a small draft model of the same vocabulary; 'mtp': an assistant head"
    )
    path: Path | None = Field(
        default=None,
        description="GGUF of the draft model or of the MTP head; empty (kind 'model' only) = the "
        "lane's own model drafting for itself",
    )
    block_size: int = Field(
        default=3,
        ge=2,
        le=33,
        description="draft block size B: the target verifies B tokens a round, the draft "
        "proposes B-1 (upstream --spec-draft-n-max B-1; Atomic --draft-block-size B)",
    )
    p_min: float | None = Field(
        default=None, ge=0.0, le=1.0, description="minimum draft probability to keep drafting"
    )
    gpu_layers: int | None = Field(default=None, description="layers of the draft on the GPU (-ngld)")

    @model_validator(mode="after")
    def _mtp_needs_path(self) -> Draft:
        if self.kind == "mtp" and self.path is None:
            raise ValueError("an MTP lane needs draft.path, the head's GGUF")
        return self


class LaneSpec(BaseModel):
    """One way of serving a model. Every field but ``name`` may come from ``[defaults]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="label shown in tables")
    model: Path | None = Field(default=None, description="main model GGUF; empty = the embedded 270M")
    server_bin: Path | None = Field(default=None, description="llama-server binary; empty = discover")
    kv: str = Field(default="f16", description="KV cache type for K and V (f16, q8_0, q4_0, ...)")
    flash_attn: FlashAttn = Field(default="auto", description="flash attention, as llama.cpp spells it")
    ctx: int | None = Field(
        default=None,
        ge=256,
        description="context size in tokens for the whole server (-c), shared by its slots; "
        "empty = slots x (n_in + n_out) rounded up",
    )
    slots: int = Field(default=2, ge=1, le=256, description="parallel slots (-np)")
    threads: int | None = Field(default=None, ge=1, description="CPU threads (-t); empty = engine's choice")
    gpu_layers: int | None = Field(default=None, description="layers on the GPU (-ngl)")
    draft: Draft | None = Field(default=None, description="optional speculative draft")
    extra_args: list[str] = Field(default_factory=list, description="more llama-server arguments")
    env: dict[str, str] = Field(default_factory=dict, description="environment for the server")
    notes: str = Field(default="", description="free text for the Notes column")
    sweep: dict[str, Any] = Field(
        default_factory=dict, description="grid values this lane was expanded from (set by lanebench sweep)"
    )

    @field_validator("kv")
    @classmethod
    def _kv_lower(cls, v: str) -> str:
        v = v.strip().lower()
        if not v or not all(c.isalnum() or c == "_" for c in v):
            raise ValueError(f"expected a cache type such as f16, q8_0, q4_0, got {v!r}")
        return v

    def draft_path(self, model: Path) -> Path | None:
        """The draft's GGUF, with an empty path meaning ``model`` itself."""
        if self.draft is None:
            return None
        return self.draft.path or model


class LanesFile(BaseModel):
    """The whole file after defaults have been merged into each lane."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lanes: list[LaneSpec]


def _expand(path: Any, base: Path) -> Any:
    if not isinstance(path, str) or not path:
        return path
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(raw)
    for key in ("model", "server_bin"):
        if key in out:
            out[key] = _expand(out[key], base)
    draft = out.get("draft")
    if isinstance(draft, dict) and "path" in draft:
        out["draft"] = {**draft, "path": _expand(draft["path"], base)}
    return out


def _merge(defaults: dict[str, Any], lane: dict[str, Any]) -> dict[str, Any]:
    """A lane over its defaults; tables (draft, env) merge one level deep."""
    out = {**defaults, **lane}
    for key in ("draft", "env"):
        if isinstance(defaults.get(key), dict) and isinstance(lane.get(key), dict):
            out[key] = {**defaults[key], **lane[key]}
    return out


def _loc(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"])


def _lane_label(raw: dict[str, Any], index: int) -> str:
    name = raw.get("name")
    return f"lane {name!r}" if isinstance(name, str) else f"lane #{index + 1}"


def parse_lanes(data: dict[str, Any], source: str, base: Path) -> list[LaneSpec]:
    """Validate a parsed lanes document; raise ``BadInput`` with one line per problem."""
    problems: list[str] = []
    unknown = sorted(set(data) - {"defaults", "lane"})
    problems += [f"{source}: unknown table {k!r} (expected [defaults] and [[lane]])" for k in unknown]
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
    lanes: list[LaneSpec] = []
    for i, raw in enumerate(raw_lanes):
        if not isinstance(raw, dict):
            problems.append(f"{source}: lane #{i + 1} must be a table")
            continue
        merged = _resolve_paths(_merge(defaults, raw), base)
        try:
            lanes.append(LaneSpec.model_validate(merged))
        except ValidationError as exc:
            label = _lane_label(raw, i)
            for err in exc.errors():
                problems.append(f"{source}: {label}: field '{_loc(err)}': {err['msg']}")
    names = [lane.name for lane in lanes]
    problems += [
        f"{source}: lane name {n!r} is used twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if problems:
        raise BadInput("\n".join(problems))
    return lanes


def load_lanes(path: Path) -> list[LaneSpec]:
    """Read and validate a lanes TOML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: lanes file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read lanes file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML ({exc})") from None
    return parse_lanes(data, str(path), path.resolve().parent)
