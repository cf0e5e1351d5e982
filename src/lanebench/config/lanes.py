"""A lane: one way of serving a model (``LaneSpec``) and its speculative draft (``Draft``),
validated field by field (pydantic, ``extra="forbid"``). Paths expand ``~`` and are relative to
the lanes file (``config.lanesfile`` reads the file)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lanebench.config.inputs import I32_MAX, show
from lanebench.config.placement import (
    PLACEMENT_FIELDS,
    DeviceList,
    RpcEndpoint,
    RpcLocal,
    SplitMode,
    tensor_split_problem,
)

FlashAttn = Literal["on", "off", "auto"]


_PATH_MAX, _NAME_MAX = 4095, 255  # bytes of a path and of one of its parts (Linux)


_LANE_NAME_MAX = 128  # bytes: a lane's name also names its log file


def _no_nul(v: str) -> str:
    if "\0" in v:
        raise ValueError(f"{show(v)} contains a NUL byte")
    return v


Text = Annotated[str, AfterValidator(_no_nul)]


def _lane_name(v: str) -> str:
    if not v.isprintable() or len(v.encode()) > _LANE_NAME_MAX:
        raise ValueError(f"expected printable text of 1 to {_LANE_NAME_MAX} bytes, got {show(v)}")
    return v


def _grid_value(v: Any) -> Any:
    if not isinstance(v, str | int | float) or (isinstance(v, str) and "\0" in v):
        raise ValueError(f"expected a grid value (a string, number or boolean), got {show(v)}")
    return v


def _env_name(v: str) -> str:
    if not v or "=" in v or "\0" in v:
        raise ValueError(f"{show(v)} is not an environment variable name")
    return v


def _url(v: str) -> str:
    v = _no_nul(v).strip().rstrip("/")
    if not v.startswith(("http://", "https://")) or len(v) > 2048 or not v.isprintable():
        raise ValueError(f"expected an http:// or https:// URL, got {show(v)}")
    return v


def _expand(value: Any, info: ValidationInfo) -> Any:
    """A path field: ``~`` expanded, relative to the lanes file's folder (``base`` in the
    validation context), and refused when no system call could take it."""
    if value is None or (isinstance(value, str | Path) and not str(value)):
        return None
    if not isinstance(value, str | Path):
        raise ValueError(f"expected a path (a string), got {show(value)}")
    text = str(value)
    if "\0" in text:
        raise ValueError(f"{show(text)} contains a NUL byte")
    try:
        p = Path(text).expanduser()
    except RuntimeError:  # ~user of an unknown user, or no home directory
        raise ValueError(f"{show(text)}: cannot expand '~' (no such user or no home)") from None
    base: Path | None = (info.context or {}).get("base")
    relative = not p.is_absolute() and base is not None
    if not p.is_absolute() and base is not None:
        p = base / p
    raw = os.fsencode(p)
    if len(raw) > _PATH_MAX or any(len(part) > _NAME_MAX for part in raw.split(b"/")):
        raise ValueError(
            f"{show(text)} is longer than the system allows ({_PATH_MAX} bytes, {_NAME_MAX} per name)"
        )
    if relative:
        try:
            p = p.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ValueError(f"{show(text)}: cannot resolve it ({exc})") from None
    return p


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
    gpu_layers: int | None = Field(
        default=None, ge=-1, le=I32_MAX, description="layers of the draft on the GPU (-ngld)"
    )

    devices: DeviceList | None = Field(
        default=None,
        description="devices of the draft or head (--spec-draft-device); empty = the main model's",
    )
    emulate: list[Annotated[float, Field(ge=0.0, le=1.0)]] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="emulated acceptance: per-position acceptance probabilities (length B-1), "
        "mapped to the build's --spec-synth-rates; the output is then not the model's",
    )
    emulate_mean_length: float | None = Field(
        default=None,
        ge=1.0,
        le=33.0,
        description="emulated acceptance as the mean tokens per verification step, the target's "
        "own included (1 = nothing accepted, B = everything), mapped to --spec-synth-len",
    )

    _path = field_validator("path", mode="before")(_expand)

    @model_validator(mode="after")
    def _mtp_needs_path(self) -> Draft:
        if self.kind == "mtp" and self.path is None:
            raise ValueError("an MTP lane needs draft.path, the head's GGUF")
        if self.emulate is not None and self.emulate_mean_length is not None:
            raise ValueError("give emulate or emulate_mean_length, not both")
        if self.emulate is not None and len(self.emulate) != self.block_size - 1:
            raise ValueError(
                f"emulate lists {len(self.emulate)} rate(s); block_size {self.block_size} drafts "
                f"{self.block_size - 1} token(s) a round, one rate per position"
            )
        if self.emulate is not None and any(b > a for a, b in itertools.pairwise(self.emulate)):
            raise ValueError(
                "emulate: rates are unconditional per position (position i is accepted only if "
                "every earlier one was), so they must not increase"
            )
        if self.emulate_mean_length is not None and self.emulate_mean_length > self.block_size:
            raise ValueError(
                f"emulate_mean_length {self.emulate_mean_length:g} is more than block_size "
                f"{self.block_size}, the most tokens one verification step can give"
            )
        return self

    @property
    def emulated(self) -> bool:
        return self.emulate is not None or self.emulate_mean_length is not None


# beside a lane's name wherever its figures are shown, when its acceptance is emulated
EMULATED_MARK = "[emulated]"


ATTACHED = ("url", "api_key_env")  # lane fields of a server that runs already (engines that attach)


class LaneSpec(BaseModel):
    """One way of serving a model. Every field but ``name`` may come from ``[defaults]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, AfterValidator(_lane_name)] = Field(
        min_length=1, description=f"label shown in tables (at most {_LANE_NAME_MAX} bytes)"
    )
    engine: Annotated[str, AfterValidator(_no_nul)] = Field(
        default="llama.cpp",
        min_length=1,
        max_length=64,
        description="what serves the lane: llama.cpp (started by lanebench), openai (any "
        "OpenAI-compatible server already running at 'url'), vllm, sglang, ollama",
    )
    url: Annotated[str, AfterValidator(_url)] | None = Field(
        default=None, description="base URL of a server that already runs (engine 'openai')"
    )
    api_key_env: Annotated[str, AfterValidator(_env_name)] | None = Field(
        default=None,
        description="name of the environment variable holding the server's API key (the key "
        "itself is never stored or logged)",
    )
    served_model: Text | None = Field(
        default=None,
        max_length=512,
        description="the model's name as the server knows it (OpenAI 'model' field, vLLM/SGLang "
        "model id); empty = the server's first model",
    )
    model: Path | None = Field(default=None, description="main model GGUF; empty = the embedded 270M")
    server_bin: Path | None = Field(default=None, description="llama-server binary; empty = discover")
    kv: str = Field(default="f16", description="KV cache type for K and V (f16, q8_0, q4_0, ...)")
    flash_attn: FlashAttn = Field(default="auto", description="flash attention, as llama.cpp spells it")
    ctx: int | None = Field(
        default=None,
        ge=256,
        le=I32_MAX,
        description="context size in tokens for the whole server (-c), shared by its slots; "
        "empty = slots x (n_in + n_out) rounded up",
    )
    slots: int = Field(default=2, ge=1, le=256, description="parallel slots (-np)")
    cache_ram: int | None = Field(
        default=None,
        ge=-1,
        le=I32_MAX,
        description="the server's host-RAM prompt cache in MiB (--cache-ram): -1 no limit, 0 off; "
        "empty = the build's default (b11434: 8192)",
    )
    threads: int | None = Field(
        default=None, ge=1, le=1 << 16, description="CPU threads (-t); empty = engine's choice"
    )
    gpu_layers: int | None = Field(default=None, ge=-1, le=I32_MAX, description="layers on the GPU (-ngl)")
    draft: Draft | None = Field(default=None, description="optional speculative draft")
    split_mode: SplitMode | None = Field(
        default=None,
        description="how llama.cpp splits the model over devices (-sm): none, layer, row, tensor",
    )
    tensor_split: list[Annotated[float, Field(ge=0.0, le=1e6)]] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="share of the model per device, in device order (-ts), e.g. [3, 1]",
    )
    main_gpu: int | None = Field(
        default=None,
        ge=0,
        le=1023,
        description="the device that holds the model with split_mode 'none' (-mg)",
    )
    devices: DeviceList | None = Field(
        default=None, description="llama.cpp device names to offload to (--device), e.g. ['CUDA0', 'RPC0']"
    )
    rpc: list[RpcEndpoint] = Field(
        default_factory=list,
        max_length=64,
        description="RPC servers already running elsewhere ('host:port', --rpc), checked before start",
    )
    rpc_local: list[RpcLocal] = Field(
        default_factory=list,
        max_length=16,
        description="ggml-rpc-server processes lanebench starts on 127.0.0.1 for this lane and stops with it",
    )
    extra_args: list[Text] = Field(default_factory=list, description="more llama-server arguments")
    env: dict[Annotated[str, AfterValidator(_env_name)], Text] = Field(
        default_factory=dict, description="environment for the server"
    )
    notes: Text = Field(default="", description="free text for the Notes column")
    reference: bool = Field(
        default=False, description="the lane others are compared with for quality (KLD, top-1)"
    )
    quality: bool = Field(default=False, description="measure this lane's quality against the reference")
    baseline: bool = Field(
        default=False, description="run the build's llama-bench with this lane's settings (the kernel view)"
    )
    sweep: dict[Text, Annotated[Any, AfterValidator(_grid_value)]] = Field(
        default_factory=dict, description="grid values this lane was expanded from (set by lanebench sweep)"
    )

    _paths = field_validator("model", "server_bin", mode="before")(_expand)

    @field_validator("tensor_split")
    @classmethod
    def _some_share(cls, v: list[float] | None) -> list[float] | None:
        if problem := tensor_split_problem(v):
            raise ValueError(problem)
        return v

    @field_validator("kv")
    @classmethod
    def _kv_lower(cls, v: str) -> str:
        v = v.strip().lower()
        if not v or not all(c.isalnum() or c == "_" for c in v):
            raise ValueError(f"expected a cache type such as f16, q8_0, q4_0, got {v!r}")
        return v

    @property
    def emulated(self) -> bool:
        """Acceptance is synthetic (``draft.emulate*`` or ``--spec-synth-*`` in ``extra_args``):
        speeds at a chosen acceptance, but the output is not the model's."""
        synth = any(a.startswith("--spec-synth-") for a in self.extra_args)
        return synth or (self.draft is not None and self.draft.emulated)

    @property
    def marked_name(self) -> str:
        """The name, followed by ``[emulated]`` when the acceptance is emulated."""
        return f"{self.name} {EMULATED_MARK}" if self.emulated else self.name

    def engine_fields(self) -> dict[str, Any]:
        """The engine-only fields this lane sets, by name (``ATTACHED``, then ``PLACED``:
        ``draft.devices`` for the draft's): only engines that list them in ``lane_fields`` take them."""
        values = {f: getattr(self, f) for f in (*ATTACHED, *PLACEMENT_FIELDS)}
        values["draft.devices"] = self.draft.devices if self.draft is not None else None
        return {k: v for k, v in values.items() if v not in (None, "", [])}

    @property
    def rpc_count(self) -> int:
        return len(self.rpc) + len(self.rpc_local)

    def draft_path(self, model: Path) -> Path | None:
        """The draft's GGUF, with an empty path meaning ``model`` itself."""
        if self.draft is None:
            return None
        return self.draft.path or model
