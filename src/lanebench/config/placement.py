"""Where a lane's model runs: the lane fields for llama.cpp's split modes, devices and RPC servers.

Validation only (pure); the flags they map to are built in ``engines.argv`` from the build's own
``--help``, and RPC servers are started and probed by ``engines.rpc``. llama.cpp's RPC protocol
has no authentication: servers lanebench starts itself (``rpc_local``) always bind 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from lanebench.config.inputs import show

# variables that change which devices a backend shows (CUDA, ROCm/HIP, Vulkan)
VISIBILITY_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "GGML_VK_VISIBLE_DEVICES",
)

SplitMode = Literal["none", "layer", "row", "tensor"]
_DEVICE_MAX = 64  # bytes of one device name


def endpoint_parts(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (``[v6]:port`` for IPv6); ValueError when malformed."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected host:port, got {show(text)}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} of {show(text)} is not in 1..65535")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"expected [IPv6]:port, got {show(text)}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{show(host)} is not an IPv6 address") from None
        return host[1:-1], port
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
    if len(host) > 253 or not set(host) <= allowed:
        raise ValueError(f"{show(host)} is not a host name or IPv4 address")
    return host, port


def _endpoint(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected 'host:port' (a string), got {show(v)}")
    endpoint_parts(v.strip())
    return v.strip()


def _device_list(v: Any) -> Any:
    """A list of device names, or one string of comma-separated names (llama.cpp's own form)."""
    if isinstance(v, str):
        v = [p.strip() for p in v.split(",")]
    if not isinstance(v, list):
        return v  # pydantic says what it expected
    for name in v:
        if not isinstance(name, str) or not name or len(name.encode()) > _DEVICE_MAX:
            raise ValueError(f"expected device names such as CUDA0 or Vulkan1, got {show(name)}")
        if not name.isprintable() or any(c in name for c in " ,\t"):
            raise ValueError(f"device name {show(name)} has a space or comma")
    return v


RpcEndpoint = Annotated[str, BeforeValidator(_endpoint)]
DeviceList = Annotated[list[str], BeforeValidator(_device_list), Field(min_length=1, max_length=64)]


class RpcLocal(BaseModel):
    """A ``ggml-rpc-server`` lanebench starts on this machine for the lane (127.0.0.1 only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: DeviceList | None = Field(
        default=None,
        description="the RPC server's own devices (its -d, e.g. CUDA1); empty = all accelerators, "
        "else its CPU",
    )
    threads: int | None = Field(
        default=None, ge=1, le=1 << 16, description="CPU threads of the RPC server (-t)"
    )
    cache: bool = Field(default=False, description="the RPC server's local tensor cache (-c)")
    port: int | None = Field(
        default=None, ge=1024, le=65535, description="port on 127.0.0.1; empty = a free one"
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="environment of the RPC server (e.g. CUDA_VISIBLE_DEVICES)"
    )

    @model_validator(mode="before")
    @classmethod
    def _loopback_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("host" in data or "bind" in data):
            raise ValueError(
                "lanebench starts RPC servers on 127.0.0.1 only (llama.cpp's RPC has no "
                "authentication); for another host, run ggml-rpc-server there and list it in 'rpc'"
            )
        return data

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"{show(key)} is not an environment variable name")
        return v


PLACEMENT_FIELDS = ("split_mode", "tensor_split", "main_gpu", "devices", "rpc", "rpc_local")
PLACED = (*PLACEMENT_FIELDS, "draft.devices")  # lane fields only an engine that places models takes


def tensor_split_problem(v: list[float] | None) -> str | None:
    if v is not None and not any(v):
        return "every share is 0: at least one device must get part of the model"
    return None
