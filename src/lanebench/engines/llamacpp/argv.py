"""Build a lane's llama-server command line: a pure function of lane, dialect and port."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.llamacpp.dialect import Dialect
from lanebench.engines.llamacpp.refusal import LaneRefused
from lanebench.engines.llamacpp.refusal import need as _need

UNQUANTISED_KV = {"f32", "f16", "bf16"}


def _draft_args(lane: LaneSpec, draft: Draft, path: Path, dialect: Dialect) -> list[str]:
    """The build's own spelling of the draft (``Dialect.spec_flags``), then what every family
    spells alike: p_min (by its flag), draft GPU layers, draft devices, emulated acceptance."""
    flags = dialect.spec_flags
    args = flags.draft_args(lane, draft, path, dialect)
    if draft.p_min is not None:
        _need(dialect, lane, flags.p_min_flag)
        args += [flags.p_min_flag, str(draft.p_min)]
    if draft.gpu_layers is not None:
        _need(dialect, lane, "-ngld")
        args += ["-ngld", str(draft.gpu_layers)]
    if draft.devices:
        devd = dialect.first("--spec-draft-device", "-devd", "--device-draft")
        if devd is None:
            _need(dialect, lane, "--spec-draft-device")
        args += [str(devd), ",".join(draft.devices)]
    return args + _emulation_args(lane, draft, dialect)


def _emulation_args(lane: LaneSpec, draft: Draft, dialect: Dialect) -> list[str]:
    """Emulated acceptance: the build accepts drafts at random at the asked rates."""
    if draft.emulate is not None:
        _need(dialect, lane, "--spec-synth-rates")
        return ["--spec-synth-rates", ",".join(f"{r:g}" for r in draft.emulate)]
    if draft.emulate_mean_length is not None:
        _need(dialect, lane, "--spec-synth-len")
        return ["--spec-synth-len", f"{draft.emulate_mean_length:g}"]
    return []


def _kv_args(lane: LaneSpec, dialect: Dialect) -> list[str]:
    if dialect.kv_types and lane.kv not in dialect.kv_types:
        raise LaneRefused(
            f"lane {lane.name!r}: field 'kv' = {lane.kv!r} is not a cache type of this build "
            f"(it lists {', '.join(dialect.kv_types)})"
        )
    if lane.kv not in UNQUANTISED_KV and lane.flash_attn == "off":
        raise LaneRefused(
            f"lane {lane.name!r}: field 'kv' = {lane.kv!r} quantises the V cache, which needs "
            "flash attention; set flash_attn to 'on' or 'auto'"
        )
    _need(dialect, lane, "-ctk", "-ctv")
    return ["-ctk", lane.kv, "-ctv", lane.kv]


CACHE_RAM_FLAGS = ("-cram", "--cache-ram")


def _cache_ram_args(lane: LaneSpec, dialect: Dialect) -> list[str]:
    """The lane's prompt cache (``cache_ram``, MiB) as this build spells it; none when unset."""
    if lane.cache_ram is None:
        return []
    flag = dialect.first(*CACHE_RAM_FLAGS)
    if flag is None:
        raise LaneRefused(
            f"lane {lane.name!r}: field 'cache_ram': this llama-server build has no --cache-ram "
            f"({dialect.version_text or 'unknown version'})"
        )
    if set(CACHE_RAM_FLAGS) & set(lane.extra_args):
        raise LaneRefused(
            f"lane {lane.name!r}: field 'cache_ram' and extra_args '{flag}' both set the prompt cache; "
            "give it once"
        )
    return [flag, str(lane.cache_ram)]


def rpc_endpoints(lane: LaneSpec, local_ports: Sequence[int] | None = None) -> list[str]:
    """The lane's ``--rpc`` list: its remote endpoints, then its local RPC servers (their ports
    are known once they run; before that, ``<rpc_local[i]>`` stands for each)."""
    if local_ports is None:
        local = [f"127.0.0.1:<rpc_local[{i}]>" for i in range(len(lane.rpc_local))]
    else:
        local = [f"127.0.0.1:{p}" for p in local_ports]
    return [*lane.rpc, *local]


def placement_args(lane: LaneSpec, dialect: Dialect, rpc: Sequence[str] = ()) -> list[str]:
    """Split mode, tensor split, main GPU, devices and RPC servers, as this build spells them."""
    args: list[str] = []
    if lane.split_mode is not None:
        _need(dialect, lane, "-sm")
        if dialect.split_modes and lane.split_mode not in dialect.split_modes:
            raise LaneRefused(
                f"lane {lane.name!r}: field 'split_mode' = {lane.split_mode!r} is not a split mode of "
                f"this build (it lists {', '.join(dialect.split_modes)})"
            )
        args += ["-sm", lane.split_mode]
    if lane.tensor_split is not None:
        _need(dialect, lane, "-ts")
        args += ["-ts", ",".join(f"{v:g}" for v in lane.tensor_split)]
    if lane.main_gpu is not None:
        _need(dialect, lane, "-mg")
        args += ["-mg", str(lane.main_gpu)]
    if rpc:
        _need(dialect, lane, "--rpc")
        args += ["--rpc", ",".join(rpc)]
    if lane.devices is not None:
        flag = dialect.first("-dev", "--device")
        if flag is None:
            _need(dialect, lane, "--device")
        args += [str(flag), ",".join(lane.devices)]
    return args


def at_port(argv: Sequence[str], port: int) -> list[str]:
    """``build_argv``'s argv listening on ``port`` instead (the value after its ``--port``, which
    comes before the lane's ``extra_args``): the argv a plan built once, served where a port is free."""
    i = list(argv).index("--port")
    return [*argv[: i + 1], str(port), *argv[i + 2 :]]


def build_argv(
    lane: LaneSpec,
    dialect: Dialect,
    binary: Path,
    model: Path,
    port: int,
    local_rpc_ports: Sequence[int] | None = None,
) -> list[str]:
    """The full argv (never a shell string) that serves ``lane`` on 127.0.0.1:``port``;
    ``local_rpc_ports``: where the lane's own RPC servers listen, once they do."""
    argv = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    if lane.ctx is not None:
        argv += ["-c", str(lane.ctx)]
    argv += ["-np", str(lane.slots)]
    argv += _cache_ram_args(lane, dialect)
    _need(dialect, lane, "--metrics")
    argv += ["--metrics"]
    if dialect.has("-lv") and not {"-lv", "-v", "--verbose", "--verbosity", "--log-verbosity"} & set(
        lane.extra_args
    ):
        argv += ["-lv", "4"]  # b11434 logs its buffer sizes (memory per lane) at verbosity 4
    argv += _kv_args(lane, dialect)
    if dialect.flash_attn_values:
        argv += ["-fa", lane.flash_attn]
    elif lane.flash_attn == "on" or (lane.flash_attn == "auto" and lane.kv not in UNQUANTISED_KV):
        argv += ["-fa"]  # older builds: a boolean flag, and a quantised V cache needs it
    if lane.threads is not None:
        argv += ["-t", str(lane.threads)]
    if lane.gpu_layers is not None:
        argv += ["-ngl", str(lane.gpu_layers)]
    argv += placement_args(lane, dialect, rpc_endpoints(lane, local_rpc_ports))
    if lane.draft is not None:
        argv += _draft_args(lane, lane.draft, lane.draft_path(model) or model, dialect)
    return argv + list(lane.extra_args)
