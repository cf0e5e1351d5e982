"""Where a lane's model ran (``PlacementRecord``): its placement fields as asked, the devices the
build saw on this host (``Device``), and what each RPC endpoint answered before the lane
started (``RpcProbe``). Plain records, no I/O."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from lanebench.records.codec import Record, fields_data


@dataclass(frozen=True, slots=True)
class Device(Record):
    """One device a llama.cpp build can offload to (its ``--list-devices``), memory in MiB."""

    name: str
    description: str
    total_mib: int
    free_mib: int


@dataclass(slots=True)
class RpcDevice(Record):
    """One device of an RPC server, as it answered ``GET_DEVICE_MEMORY`` (MiB)."""

    free_mib: float | None = None
    total_mib: float | None = None


@dataclass(slots=True)
class RpcProbe(Record):
    """What one RPC endpoint said before the lane started: its protocol version, its devices,
    and the round trips (ms) of small requests."""

    endpoint: str
    local: bool = False
    protocol: str = ""
    devices: list[RpcDevice] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)

    @property
    def rtt_ms_median(self) -> float | None:
        return round(statistics.median(self.rtt_ms), 4) if self.rtt_ms else None

    @property
    def total_mib(self) -> float:
        """The memory of all its devices (MiB)."""
        return sum(d.total_mib or 0.0 for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {**fields_data(self), "rtt_ms_median": self.rtt_ms_median}


@dataclass(slots=True)
class PlacementRecord(Record):
    """Where a lane's model ran: split mode, tensor split, main GPU and devices as the lane asked
    (None: not asked), each RPC endpoint's probe, and the devices the build saw here
    (``local_devices``; None when not listed)."""

    split_mode: str | None = None
    tensor_split: list[float] | None = None
    main_gpu: int | None = None
    devices: list[str] | None = None
    draft_devices: list[str] | None = None
    rpc: list[RpcProbe] = field(default_factory=list)
    local_devices: list[Device] | None = None
