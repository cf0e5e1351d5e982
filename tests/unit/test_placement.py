"""Placement fields (split mode, devices, RPC servers): validation, flags, device lists, the RPC
wire protocol (against a FAKE RPC server written here from ggml-rpc.cpp's message layout), and
the Placement table."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from pydantic import ValidationError

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.placement import RpcLocal, endpoint_parts
from lanebench.config.run import RunConfig
from lanebench.engines.llamacpp.argv import LaneRefused, build_argv, placement_args, rpc_endpoints
from lanebench.engines.llamacpp.devices import Device, check_device_names, parse_devices
from lanebench.engines.llamacpp.dialect import Dialect, parse_dialect
from lanebench.engines.llamacpp.placement import placed
from lanebench.engines.llamacpp.rpc import (
    CMD_DEVICE_COUNT,
    CMD_GET_DEVICE_MEMORY,
    CMD_HELLO,
    CONN_CAPS,
    RpcError,
    probe,
    rpc_server_argv,
    why_unreachable,
)
from lanebench.engines.registry import get_engine
from lanebench.errors import BadInput
from lanebench.orchestration.plan import plan_lanes, refuse_fields
from lanebench.records.lane import LaneResult
from lanebench.records.placement import PlacementRecord, RpcDevice, RpcProbe
from lanebench.report.placement import placement_cells, placement_table

HELP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "help"
BIN, MODEL = Path("/opt/llama/bin/llama-server"), Path("/models/main.gguf")


@cache
def dialect(name: str = "b11434") -> Dialect:
    return parse_dialect(
        (HELP_DIR / f"{name}.version").read_text(encoding="utf-8"),
        (HELP_DIR / f"{name}.help").read_text(encoding="utf-8"),
    )


def lane(**kw: object) -> LaneSpec:
    kw.setdefault("name", "L")
    return LaneSpec(**kw)  # type: ignore[arg-type]


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("10.0.0.2:50052", ("10.0.0.2", 50052)),
        ("box-b.lan:1", ("box-b.lan", 1)),
        ("[::1]:50052", ("::1", 50052)),
    ],
)
def test_endpoint_parts(text: str, parts: tuple[str, int]) -> None:
    assert endpoint_parts(text) == parts


@pytest.mark.parametrize(
    "text", ["50052", "host:", ":50052", "host:0", "host:70000", "a b:1", "[zz]:1", "[::1:5"]
)
def test_bad_endpoints_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as exc:
        lane(rpc=[text])
    assert exc.value.errors()[0]["loc"][:1] == ("rpc",)


def test_devices_take_a_list_or_llama_cpp_comma_form() -> None:
    assert lane(devices="CUDA0,RPC0").devices == ["CUDA0", "RPC0"]
    assert lane(devices=["Vulkan1"]).devices == ["Vulkan1"]
    for bad in ("CUDA0,,CUDA1", ["CUDA 0"], [""], []):
        with pytest.raises(ValidationError):
            lane(devices=bad)


def test_tensor_split_needs_a_share_and_split_mode_a_known_value() -> None:
    assert lane(tensor_split=[3, 1]).tensor_split == [3.0, 1.0]
    with pytest.raises(ValidationError, match="every share is 0"):
        lane(tensor_split=[0, 0])
    with pytest.raises(ValidationError):
        lane(tensor_split=[-1, 2])
    with pytest.raises(ValidationError):
        lane(split_mode="rows")


def test_rpc_local_never_binds_beyond_loopback() -> None:
    with pytest.raises(ValidationError, match=r"127\.0\.0\.1 only"):
        lane(rpc_local=[{"host": "0.0.0.0"}])
    entry = RpcLocal(devices="CUDA1", threads=4, cache=True, port=50100)
    argv = rpc_server_argv(Path("/b/ggml-rpc-server"), entry, 50100)
    assert argv == ["/b/ggml-rpc-server", "-H", "127.0.0.1", "-p", "50100", "-d", "CUDA1", "-t", "4", "-c"]


def test_placed() -> None:
    assert not placed(lane())
    assert placed(lane(main_gpu=0)) and placed(lane(rpc_local=[{}]))
    assert placed(lane(draft={"kind": "model", "devices": "CUDA1"}))


# --- flags -----------------------------------------------------------------------------------
def test_placement_flags_in_order_rpc_before_devices() -> None:
    spec = lane(
        split_mode="layer",
        tensor_split=[3, 1.5],
        main_gpu=1,
        devices=["CUDA0", "RPC0"],
        rpc=["10.0.0.2:50052"],
    )
    args = placement_args(spec, dialect(), rpc_endpoints(spec))
    assert args == [
        "-sm",
        "layer",
        "-ts",
        "3,1.5",
        "-mg",
        "1",
        "--rpc",
        "10.0.0.2:50052",
        "-dev",
        "CUDA0,RPC0",
    ]
    # llama.cpp registers RPC devices while parsing --rpc: a --device naming RPC0 must come after it
    assert args.index("--rpc") < args.index("-dev")


def test_local_rpc_ports_follow_the_remote_endpoints() -> None:
    spec = lane(rpc=["10.0.0.2:50052"], rpc_local=[{}, {}])
    assert rpc_endpoints(spec) == ["10.0.0.2:50052", "127.0.0.1:<rpc_local[0]>", "127.0.0.1:<rpc_local[1]>"]
    argv = build_argv(spec, dialect(), BIN, MODEL, 8080, [4001, 4002])
    assert argv[argv.index("--rpc") + 1] == "10.0.0.2:50052,127.0.0.1:4001,127.0.0.1:4002"


def test_draft_devices_use_the_builds_spelling() -> None:
    spec = lane(draft={"kind": "model", "path": "/m/d.gguf", "devices": ["CUDA1"]})
    argv = build_argv(spec, dialect(), BIN, MODEL, 8080)
    assert argv[argv.index("--spec-draft-device") + 1] == "CUDA1"


def test_builds_without_the_flags_refuse_naming_them() -> None:
    legacy = dialect("legacy-b5xxx")
    for kw, flag in (({"split_mode": "tensor"}, "split_mode"), ({"rpc": ["h:1"]}, "--rpc")):
        if flag == "--rpc" and legacy.has("--rpc"):
            continue
        with pytest.raises(LaneRefused, match=flag):
            build_argv(lane(**kw), legacy, BIN, MODEL, 8080)
    no_tensor = Dialect("v", 1, None, dialect().flags, split_modes=("none", "layer", "row"))
    with pytest.raises(LaneRefused, match="'split_mode' = 'tensor' is not a split mode of this build"):
        build_argv(lane(split_mode="tensor"), no_tensor, BIN, MODEL, 8080)
    bare = Dialect("v", 1, None, dialect().flags - {"-sm", "--split-mode"})
    with pytest.raises(LaneRefused, match="has no -sm"):
        build_argv(lane(split_mode="layer"), bare, BIN, MODEL, 8080)


def test_b11434_lists_its_split_modes() -> None:
    assert dialect().split_modes == ("none", "layer", "row", "tensor")


def test_other_engines_refuse_placement_fields() -> None:
    with pytest.raises(BadInput, match=r"field 'tensor_split' places the model with llama\.cpp's flags"):
        refuse_fields(get_engine("openai"), lane(engine="openai", url="http://h:1", tensor_split=[1, 1]))
    with pytest.raises(BadInput, match=r"draft\.devices"):
        refuse_fields(get_engine("vllm"), lane(engine="vllm", draft={"kind": "model", "devices": "CUDA1"}))
    refuse_fields(get_engine("llama.cpp"), lane(rpc=["h:1"]))  # llama.cpp takes them


@pytest.mark.parametrize("engine", ["llama.cpp", "vllm", "sglang"])
@pytest.mark.parametrize("field", ["url", "api_key_env"])
def test_engines_that_start_their_server_refuse_the_fields_of_one_that_runs(engine: str, field: str) -> None:
    value = "http://127.0.0.1:1" if field == "url" else "KEY"
    spec = lane(engine=engine, **{field: value})
    with pytest.raises(BadInput) as err:
        refuse_fields(get_engine(engine), spec)
    assert str(err.value) == (
        f"lane 'L': field {field!r} is for a server that already runs (engine 'ollama' or 'openai'); "
        f"engine {engine!r} starts its own"
    )
    for taker in ("ollama", "openai"):
        refuse_fields(get_engine(taker), lane(engine=taker, **{"url": "http://127.0.0.1:1", field: value}))


@pytest.mark.parametrize(
    ("engine", "extra"),
    [
        ("openai", {"url": "http://127.0.0.1:9"}),
        ("vllm", {}),
        ("sglang", {}),
        ("ollama", {"served_model": "m"}),
    ],
)
def test_planning_refuses_placement_fields_of_engines_without_them(
    engine: str, extra: dict[str, object]
) -> None:
    """Before the engine looks for anything (the binary, the URL, the model), for every engine
    that does not list them in ``lane_fields``: a plugin engine gets it without writing it."""
    config = RunConfig(out_dir=Path("/nonexistent")).with_job(JobSpec(n_in=8, n_out=4))
    for placed_field in ({"tensor_split": [1, 1]}, {"draft": {"kind": "model", "devices": "CUDA1"}}):
        spec = lane(engine=engine, **extra, **placed_field)
        with pytest.raises(BadInput, match=r"places the model with llama\.cpp's flags"):
            plan_lanes([spec], config)


# --- --list-devices --------------------------------------------------------------------------
# Reconstructed from common/arg.cpp (common_print_available_devices) of b11434, not recorded.
CUDA_LIST = """ggml_cuda_init: found 2 CUDA devices:
Available devices:
  CUDA0: NVIDIA H200 (143156 MiB, 142587 MiB free)
  CUDA1: NVIDIA H200 (143156 MiB, 142587 MiB free)
"""


def test_parse_devices() -> None:
    devs = parse_devices(CUDA_LIST)
    assert devs == [
        Device("CUDA0", "NVIDIA H200", 143156, 142587),
        Device("CUDA1", "NVIDIA H200", 143156, 142587),
    ]
    assert parse_devices("Available devices:\n  (none)\n") == []
    assert parse_devices("error: unknown argument: --list-devices") is None


def test_device_names_checked_against_the_list() -> None:
    devs = tuple(parse_devices(CUDA_LIST) or [])
    check_device_names("lane 'L'", "devices", ["CUDA1", "CUDA0"], devs, 0)
    check_device_names("lane 'L'", "devices", ["none"], (), 0)
    check_device_names("lane 'L'", "devices", ["CUDA0", "RPC1"], devs, 2)  # RPC devices: known at start
    with pytest.raises(
        BadInput, match=r"'CUDA2' is not a device of this build here \(--list-devices lists CUDA0"
    ):
        check_device_names("lane 'L'", "devices", ["CUDA2"], devs, 0)
    with pytest.raises(BadInput, match=r"RPC0.*no devices"):
        check_device_names("lane 'L'", "devices", ["RPC0"], (), 0)
    with pytest.raises(BadInput, match="'none' cannot be combined"):
        check_device_names("lane 'L'", "draft.devices", ["CUDA0", "none"], devs, 0)


# --- the RPC wire protocol, against a FAKE server ---------------------------------------------
class FakeRpcServer:
    """A FAKE ggml-rpc-server: HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY as ggml-rpc.cpp lays
    them out (``| cmd u8 | size u64 | data |`` in, ``| size u64 | data |`` out), or a broken reply."""

    def __init__(self, devices: list[tuple[int, int]], broken: bool = False) -> None:
        self.devices, self.broken = devices, broken
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv(self, conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            try:
                while True:
                    cmd = self._recv(conn, 1)[0]
                    (size,) = struct.unpack("<Q", self._recv(conn, 8))
                    data = self._recv(conn, size)
                    if cmd == CMD_HELLO:
                        assert size == CONN_CAPS
                        out = bytes([7, 0, 3, 0]) + bytes(CONN_CAPS)
                        if self.broken:
                            out = out[:3]
                    elif cmd == CMD_DEVICE_COUNT:
                        out = struct.pack("<I", len(self.devices))
                    elif cmd == CMD_GET_DEVICE_MEMORY:
                        (dev,) = struct.unpack("<I", data)
                        out = struct.pack("<QQ", *self.devices[dev])
                    else:
                        return
                    conn.sendall(struct.pack("<Q", len(out)) + out)
            except ConnectionError:
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_rpc() -> Iterator[FakeRpcServer]:
    server = FakeRpcServer([(30 << 30, 32 << 30), (10 << 30, 16 << 30)])
    yield server
    server.close()


def test_probe_reads_version_devices_memory_and_times_round_trips(fake_rpc: FakeRpcServer) -> None:
    found = probe(f"127.0.0.1:{fake_rpc.port}", rounds=4)
    assert found.protocol == "7.0.3"
    assert found.devices == [RpcDevice(30720.0, 32768.0), RpcDevice(10240.0, 16384.0)]
    assert len(found.rtt_ms) == 4 and all(r > 0 for r in found.rtt_ms)
    assert found.to_dict()["rtt_ms_median"] == found.rtt_ms_median


def test_a_server_of_another_protocol_is_named_as_such() -> None:
    server = FakeRpcServer([], broken=True)
    try:
        with pytest.raises(RpcError, match="a reply of 3 bytes where ggml-rpc sends 28"):
            probe(f"127.0.0.1:{server.port}")
    finally:
        server.close()


def test_nothing_listening_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        assert why_unreachable(f"127.0.0.1:{port}") == "connection refused (nothing listens there)"


# --- the Placement table ---------------------------------------------------------------------
def test_placement_table_and_cells() -> None:
    devices = [{"free_mib": 1024.0, "total_mib": 2048.0}]
    probe_rec = {"endpoint": "127.0.0.1:4001", "local": True, "protocol": "7.0.0",
                 "devices": devices, "rtt_ms": [0.05], "rtt_ms_median": 0.05}  # fmt: skip
    placed = LaneResult(name="two boxes", lane=lane(name="two boxes"))
    # as a run document held it before placements were records: read back typed
    old = {"split_mode": "layer", "tensor_split": [3.0, 1.0], "main_gpu": None,
           "devices": ["CUDA0", "RPC0"], "draft_devices": None, "rpc": [probe_rec]}  # fmt: skip
    placed.placement = PlacementRecord.from_dict(old)
    assert type(placed.placement.rpc[0]) is RpcProbe and type(placed.placement.rpc[0].devices[0]) is RpcDevice
    plain = LaneResult(name="plain", lane=lane(name="plain"))
    assert placement_table([plain]) is None
    table = placement_table([plain, placed])
    assert table is not None and len(table.rows) == 1
    row = table.rows[0]
    assert row[:3] == ["two boxes", "layer, ts 3:1", "CUDA0, RPC0"]
    assert "127.0.0.1:4001 (local, 1 dev, 2.0 GiB, RTT 0.050 ms)" in row[3]
    assert placement_cells(placed) == ["layer", "3:1", "CUDA0,RPC0", "127.0.0.1:4001", "0.05"]
    assert placement_cells(plain) == ["", "", "", "", ""]


def test_compare_lines_up_rpc_round_trips_by_endpoint() -> None:
    from lanebench.report.compare import compare_rows, compare_table

    def result(ports: tuple[int, int], rtt: list[float]) -> LaneResult:
        r = LaneResult(name="rpc", lane=lane(name="rpc"))
        r.placement = PlacementRecord(rpc=[
            RpcProbe("10.0.0.2:50052", False, rtt_ms=[v * 10 for v in rtt]),
            RpcProbe(f"127.0.0.1:{ports[0]}", True, rtt_ms=rtt),
            RpcProbe(f"127.0.0.1:{ports[1]}", True, rtt_ms=[]),
        ])  # fmt: skip
        return r

    rows = [
        r
        for r in compare_rows([result((1, 2), [0.05, 0.055, 0.06])], [result((3, 4), [0.2, 0.25, 0.3])])
        if "rpc" in r["figure"]
    ]
    assert [r["label"] for r in rows] == [
        "RPC RTT 10.0.0.2:50052",
        "RPC RTT rpc_local[0]",
    ]  # no samples: no row
    assert rows[1]["verdict"] == "B worse (min–max ranges apart, 3 vs 3 reps, p = 0.10 by chance)"
    assert rows[1]["ratio"] == pytest.approx(0.25 / 0.055)
    table = compare_table("A", "B", rows)
    assert "0.055 ms (0.050–0.060)" in [c for row in table.rows for c in row]
