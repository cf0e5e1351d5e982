"""A llama.cpp lane served with RPC servers: its own ``ggml-rpc-server`` processes first, every
endpoint probed, then ``llama-server --rpc ...``; all stopped together, none orphaned.

The endpoint behaves like a ``ServerProcess`` (the lane's llama-server) to the pipeline. When the
lane fails, the RPC servers are asked first: one that died is named with its exit and log tail;
if llama-server died saying an RPC server crashed, every endpoint is probed again to name the one
that no longer answers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from lanebench.config.lanes import LaneSpec
from lanebench.config.placement import RpcLocal
from lanebench.engines.llamacpp.argv import rpc_endpoints
from lanebench.engines.llamacpp.rpc import (
    RpcError,
    answers,
    failure_text,
    probe,
    rpc_server_argv,
    why_unreachable,
)
from lanebench.errors import LaneFailed
from lanebench.records.placement import RpcProbe
from lanebench.server.process import ServerProcess

RPC_LOAD_TIMEOUT_S = 120.0
_CRASH_MARK = "Remote RPC server crashed"


class LocalRpcServers:
    """The lane's ``rpc_local`` entries as running ``ggml-rpc-server`` processes on 127.0.0.1:
    started in order, each ready once it answers a HELLO; stopped together (also on failure)."""

    def __init__(
        self, label: str, log_path: Path, rpc_bin: Path | None, local: list[RpcLocal], load_timeout_s: float
    ) -> None:
        self.label = label
        self.procs: list[ServerProcess] = []
        for i, entry in enumerate(local):
            assert rpc_bin is not None, "planning refuses rpc_local without a ggml-rpc-server"
            self.procs.append(
                ServerProcess(
                    functools.partial(rpc_server_argv, rpc_bin, entry),
                    log_path.with_name(f"{log_path.stem}-rpc{i}.log"),
                    label=f"{label}: RPC server rpc_local[{i}]",
                    env=entry.env,
                    load_timeout_s=min(load_timeout_s, RPC_LOAD_TIMEOUT_S),
                    port=entry.port,
                    bind_retries=1 if entry.port else 3,
                    ready=answers,
                    program="ggml-rpc-server",
                )
            )

    @property
    def ports(self) -> list[int]:
        return [sp.port for sp in self.procs]

    def __enter__(self) -> LocalRpcServers:
        try:
            for sp in self.procs:
                sp.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        for sp in self.procs:
            sp.stop(grace_s=5.0)

    def dead(self, server: ServerProcess | None = None) -> LaneFailed | None:
        """The failure of the first RPC server that exited, naming its endpoint; None if all run."""
        for i, sp in enumerate(self.procs):
            if sp.proc is not None and sp.proc.poll() is not None:
                log_tail = sp.log_tail()
                cause = sp.exit_cause(log_tail, "mid-run").removeprefix("ggml-rpc-server ")
                tails = f"--- {sp.log_path.name} ---\n{log_tail}"
                if server is not None:
                    tails += f"\n--- {server.log_path.name} ---\n{server.log_tail()}"
                return LaneFailed(
                    f"{self.label}: RPC server 127.0.0.1:{sp.port} (rpc_local[{i}]) {cause}", tails
                )
        return None


class RpcLaneEndpoint:
    """llama-server plus the lane's RPC servers, started and stopped as one."""

    def __init__(
        self,
        lane: LaneSpec,
        log_path: Path,
        server_argv: Callable[[int, list[int]], list[str]],
        *,
        rpc_bin: Path | None,
        load_timeout_s: float,
    ) -> None:
        self.lane, self.log_path = lane, log_path
        self.label = f"lane {lane.name!r}"
        self.locals = LocalRpcServers(self.label, log_path, rpc_bin, list(lane.rpc_local), load_timeout_s)
        self.server = ServerProcess(
            lambda port: server_argv(port, self.locals.ports),
            log_path,
            label=self.label,
            env=lane.env,
            load_timeout_s=load_timeout_s,
        )
        self.probes: list[RpcProbe] = []

    # the Endpoint protocol: llama-server's view -------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def load_s(self) -> float | None:
        return self.server.load_s

    @property
    def argv(self) -> list[str]:
        return self.server.argv

    @property
    def proc(self) -> Any:
        return self.server.proc

    @property
    def process_group_pids(self) -> list[int]:
        """Leaders of the process groups this lane started: llama-server, then its RPC servers."""
        procs = [self.server.proc, *(sp.proc for sp in self.locals.procs)]
        return [p.pid for p in procs if p is not None]

    def headers(self) -> dict[str, str]:
        return {}

    def log_tail(self, lines: int = 20) -> str:
        return self.server.log_tail(lines)

    def __enter__(self) -> RpcLaneEndpoint:
        try:
            self.locals.__enter__()
            endpoints = rpc_endpoints(self.lane, self.locals.ports)  # the lane's rpc, then its own
            self.probes = [self._probe(ep, i >= len(self.lane.rpc)) for i, ep in enumerate(endpoints)]
            self.server.start()
        except LaneFailed as exc:
            self.stop()
            raise self._blame(exc) from None
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """llama-server first (it holds the connections), then every RPC server."""
        self.server.stop()
        self.locals.stop()

    def _probe(self, endpoint: str, local: bool) -> RpcProbe:
        try:
            return probe(endpoint, local=local)
        except (OSError, RpcError) as exc:
            raise LaneFailed(f"{self.label}: RPC server {endpoint}: {failure_text(exc, 3.0)}") from None

    def check_alive(self, grace_s: float = 0.0) -> None:
        """The lane's failure, blaming an RPC server where one died or stopped answering."""
        try:
            self.server.check_alive(grace_s)
        except LaneFailed as exc:
            raise self._blame(exc) from None
        if (failure := self.locals.dead(self.server)) is not None:
            raise failure

    def _blame(self, exc: LaneFailed) -> LaneFailed:
        """``exc`` re-worded when an RPC server is the cause."""
        if (failure := self.locals.dead(self.server)) is not None:
            return failure
        if _CRASH_MARK in (exc.log_tail or self.server.log_tail(40)) and self.lane.rpc:
            silent = [ep for ep in self.lane.rpc if why_unreachable(ep, timeout_s=2.0) is not None]
            if silent:
                return LaneFailed(
                    f"{self.label}: RPC server {', '.join(silent)} stopped answering mid-run "
                    f"(llama-server: {_CRASH_MARK})",
                    exc.log_tail,
                )
        return exc

    def placement(self) -> list[RpcProbe]:
        """What the RPC servers said before the lane started."""
        return list(self.probes)
