"""Memory per device: recorded b11434 logs on 2 x H200 (two GPUs, GPU + RPC, GPU + two RPC
servers), GPUs matched to the log's devices, the lane's process groups sampled by ``measured``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_memory_gpu import fake_nvidia_smi

from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import process_leaders
from lanebench.engines.llamacpp.engine import LlamaCpp
from lanebench.memory.collect import VULKAN_NOTE, memory_record
from lanebench.memory.devices import add_gpu_peaks, device_breakdown
from lanebench.memory.gpu import GpuInfo
from lanebench.memory.logparse import parse_buffers, parse_device_ids
from lanebench.orchestration.memory_step import measured
from lanebench.records.lane import LaneResult
from lanebench.records.memory import DEVICE_KEYS, HOST, DeviceMemory, MemoryRecord

LOGS = Path(__file__).parents[1] / "fixtures" / "devlog"
LAYER = LOGS / "b11434-h200x2-sm-layer-lv4.log"
RPC = LOGS / "b11434-h200-gpu0-rpc-gpu1-lv4.log"
MIXED = LOGS / "b11434-h200x2-rpc-gpu-cpu-lv4.log"
H200 = [GpuInfo(0, "NVIDIA H200", 649.0, 143771.0, "u0", "0000:00:06.0"),
        GpuInfo(1, "NVIDIA H200", 1265.0, 143771.0, "u1", "0000:00:07.0")]  # fmt: skip


def by_name(devices: list[DeviceMemory]) -> dict[str, DeviceMemory]:
    return {d.device: d for d in devices}


def test_two_gpus_layer_split() -> None:
    devices = device_breakdown(parse_buffers(LAYER.read_text()))
    assert [d.device for d in devices] == ["CUDA0", "CUDA1", HOST]
    assert all(type(d) is DeviceMemory for d in devices)
    cuda0, cuda1, host = devices
    assert (cuda0.weights, cuda0.kv, cuda0.compute) == (0.07, 1.19, 56.97)  # KV: 1.00 + 0.19 (SWA)
    assert (cuda1.weights, cuda1.kv, cuda1.compute) == (9.03, 1.0, 49.66)
    assert cuda0.weights_share == round(0.07 / 9.10, 4) and cuda1.weights_share == round(9.03 / 9.10, 4)
    # CPU_Mapped weights (the token embeddings), CUDA_Host output (4.00) and compute (39.36) buffers
    assert (host.weights, host.kv, host.compute, host.weights_share) == (9.0, None, 43.36, None)
    assert all(d.draft is None for d in devices)


def test_rpc_devices_as_the_log_names_them() -> None:
    text = MIXED.read_text()
    devices = by_name(device_breakdown(parse_buffers(text)))
    assert list(devices) == ["CUDA0", "CUDA1", "RPC0[127.0.0.1:50053]", "RPC0[127.0.0.1:50054]", HOST]
    gpu_rpc, cpu_rpc = devices["RPC0[127.0.0.1:50053]"], devices["RPC0[127.0.0.1:50054]"]
    assert (gpu_rpc.weights, gpu_rpc.kv, gpu_rpc.compute) == (0.05, 1.14, 58.44)
    assert (cpu_rpc.weights, cpu_rpc.kv, cpu_rpc.compute) == (0.02, 0.14, 10.9)
    shares = [d.weights_share for d in devices.values() if d.device != HOST]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3) and devices["CUDA1"].weights_share > 0.98
    # PCI bus ids of the CUDA devices only (RPC devices print "unknown id")
    assert parse_device_ids(text) == {"CUDA0": "0000:00:06.0", "CUDA1": "0000:00:07.0"}


def test_draft_buffers_per_device() -> None:
    main_then_draft = "\n".join(
        [
            "load_tensors:        CUDA0 model buffer size =  1000.00 MiB",
            "load_tensors:        CUDA1 model buffer size =  3000.00 MiB",
            "llama_kv_cache:      CUDA0 KV buffer size =    64.00 MiB",
            "sched_reserve:      CUDA0 compute buffer size =   100.00 MiB",
            "load_tensors:        CUDA1 model buffer size =   200.00 MiB",
            "llama_kv_cache:      CUDA1 KV buffer size =     8.00 MiB",
            "sched_reserve:  CUDA_Host compute buffer size =     2.00 MiB",
        ]
    )
    cuda0, cuda1, host = device_breakdown(parse_buffers(main_then_draft))
    assert (cuda0.draft, cuda1.draft, host.draft) == (None, 208.0, 2.0)
    assert (cuda0.weights_share, cuda1.weights_share) == (0.25, 0.75)
    assert device_breakdown([]) == []


def test_gpus_matched_by_bus_id_and_an_rpc_servers_gpu_named_alone() -> None:
    text = RPC.read_text()  # llama-server with CUDA_VISIBLE_DEVICES=0: its CUDA0 is GPU0
    devices = device_breakdown(parse_buffers(text))
    add_gpu_peaks(devices, {0: 650.0, 1: 648.0}, dict(enumerate(H200)), parse_device_ids(text), {})
    d = by_name(devices)
    assert list(d) == ["CUDA0", "RPC0[127.0.0.1:50052]", HOST, "GPU1 (NVIDIA H200)"]
    assert (d["CUDA0"].peak_vram, d["CUDA0"].gpu, d["CUDA0"].vram_total) == (
        650.0,
        "GPU0 (NVIDIA H200)",
        143771.0,
    )
    assert d["GPU1 (NVIDIA H200)"].peak_vram == 648.0 and d["GPU1 (NVIDIA H200)"].weights is None
    assert d["RPC0[127.0.0.1:50052]"].peak_vram is None


@pytest.mark.parametrize(
    ("env", "names", "expected"),
    [
        ({}, ("A", "A"), "CUDA1"),  # all GPUs alike, every one visible: CUDA<i> is GPU i
        ({"CUDA_VISIBLE_DEVICES": "1,0"}, ("A", "A"), "GPU1 (A)"),
        ({}, ("A", "B"), "GPU1 (B)"),  # unlike GPUs: CUDA may order them fastest first
        ({"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, ("A", "B"), "CUDA1"),
    ],
)
def test_without_bus_ids_gpu_i_is_cuda_i_only_when_the_order_is_known(
    env: dict[str, str], names: tuple[str, str], expected: str
) -> None:
    devices = device_breakdown(parse_buffers(LAYER.read_text()))
    gpus = {i: GpuInfo(i, n, None, 1000.0) for i, n in enumerate(names)}
    add_gpu_peaks(devices, {1: 600.0}, gpus, {}, env)
    assert [d.device for d in devices if d.peak_vram == 600.0] == [expected]


def test_vulkan_has_no_per_process_query_note(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("load_tensors:      Vulkan0 model buffer size =   500.00 MiB\n")
    rec = memory_record(512, 1, log, None)
    assert rec.devices[0].device == "Vulkan0" and VULKAN_NOTE in rec.notes


def test_old_records_still_read() -> None:
    old = {"ctx": 512, "slots": 2, "weights": 1.0, "peak_vram": 3.0, "notes": ["x"], "retired": 1}
    rec = MemoryRecord.from_dict(old)
    assert rec.devices == [] and rec.vram_tool is None and rec.groups is None and rec.peak_vram == 3.0
    new = MemoryRecord(devices=[DeviceMemory("CUDA0", weights=1.0)], vram_tool="nvidia-smi", groups=2)
    assert MemoryRecord.from_dict(new.to_dict()) == new
    assert new.to_dict()["devices"] == [{**dict.fromkeys(DEVICE_KEYS), "device": "CUDA0", "weights": 1.0}]


def test_devices_of_a_document_written_before_they_were_records_read_as_records() -> None:
    """Before ``DeviceMemory``, each device was a dict of ``DEVICE_KEYS`` (some left out by hand)."""
    old = {"ctx": 512, "devices": [{"device": "CUDA0", "weights": 9.0, "peak_vram": 650.0, "gpu": "GPU0 (A)"},
                                   {"device": "host", "compute": 43.36, "retired": 1}]}  # fmt: skip
    rec = MemoryRecord.from_dict(old)
    assert [type(d) for d in rec.devices] == [DeviceMemory, DeviceMemory]
    assert (rec.devices[0].weights, rec.devices[0].peak_vram, rec.devices[0].kv) == (9.0, 650.0, None)
    assert rec.devices[1].device == HOST and rec.devices[1].compute == 43.36


class FakeEndpoint:
    """What ``measured`` reads of an endpoint: its log, and its process groups."""

    def __init__(self, log: Path, pids: list[int] | None = None, proc: Any = None) -> None:
        self.log_path, self.proc = log, proc
        if pids is not None:
            self.process_group_pids = pids


@pytest.fixture
def two_groups() -> Iterator[list[int]]:
    procs = [subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_leaders_contract() -> None:
    class Proc:
        pid = 41

    assert process_leaders(FakeEndpoint(RPC, [40, 50], Proc())) == [40, 50]  # type: ignore[arg-type]
    assert process_leaders(FakeEndpoint(RPC, [], Proc())) == [41]  # type: ignore[arg-type]
    assert process_leaders(FakeEndpoint(RPC)) == []  # type: ignore[arg-type]


def test_measured_samples_every_group_and_maps_gpus(
    tmp_path: Path, two_groups: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, rpc = two_groups
    fake_nvidia_smi(tmp_path, server, rpc)
    monkeypatch.setenv("PATH", str(tmp_path))
    plan = LanePlan(LaneSpec(name="mixed", slots=4), LlamaCpp(), 4096, build="llama-server")
    result = LaneResult(name="mixed", lane=plan.lane)
    sources = plan.engine.memory_sources(plan, FakeEndpoint(MIXED, [server, rpc]))  # type: ignore[arg-type]
    with measured(plan, sources, result):
        pass
    m = result.memory
    assert m is not None and m.groups == 2 and m.vram_tool == "nvidia-smi" and m.notes == []
    assert m.peak_rss is not None and m.peak_rss > 0 and m.peak_vram == 1890.0
    d = by_name(m.devices)
    assert (d["CUDA0"].peak_vram, d["CUDA1"].peak_vram) == (640.0, 1250.0)  # GPU1: server + RPC
    assert d["CUDA1"].weights == 9.0 and (m.ctx, m.slots) == (4096, 4)


def test_measured_without_a_gpu_tool(
    tmp_path: Path, two_groups: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    plan = LanePlan(LaneSpec(name="cpu"), LlamaCpp(), 512, build="llama-server")
    result = LaneResult(name="cpu", lane=plan.lane)
    sources = plan.engine.memory_sources(plan, FakeEndpoint(LAYER, two_groups[:1]))  # type: ignore[arg-type]
    with measured(plan, sources, result):
        pass
    m = result.memory
    assert m is not None and m.peak_vram is None and m.vram_tool is None and m.groups == 1
    assert m.notes == ["no nvidia-smi or rocm-smi: GPU memory per process not measured"]
    assert [d.device for d in m.devices] == ["CUDA0", "CUDA1", HOST]  # the log's own split stands


def test_a_log_of_two_server_runs_gives_the_last_runs_buffers_not_a_draft(tmp_path: Path) -> None:
    # a resumed lane's server appends to its log: the earlier run's buffers are not a draft model
    # (seen on the device: a plain 12B lane showed a 14.3 GiB "draft", its earlier run's buffers)
    one = LAYER.read_text()
    log = tmp_path / "lane.log"
    log.write_text(f"$ llama-server --port 1\n{one}\n$ llama-server --port 2\n{one}")
    twice = memory_record(512, 1, log, None)
    log.write_text(f"$ llama-server --port 2\n{one}")
    once = memory_record(512, 1, log, None)
    assert twice.draft is None and once.draft is None
    assert (twice.weights, twice.kv, twice.compute) == (once.weights, once.kv, once.compute)
    assert twice.weights is not None and twice.weights > 0
    assert twice.devices == once.devices
