"""GPU memory per device and process: nvidia-smi (recorded output), rocm-smi (a fake whose shape
is reconstructed from its source), the sampler against a fake nvidia-smi on PATH."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanebench.memory.gpu import (
    ALL_GPUS,
    GpuSnapshot,
    GpuToolError,
    NvidiaSmi,
    RocmSmi,
    find_probe,
    norm_bus_id,
    parse_compute_apps,
    parse_nvidia_gpus,
    parse_rocm,
)
from lanebench.memory.proc import lane_pgids
from lanebench.memory.vram import VramSampler

FIX = Path(__file__).parents[1] / "fixtures"
SMI = FIX / "gpu_smi"
GPU0 = "GPU-6f093f5c-58f2-4846-312f-0f17142a78a1"
GPU1 = "GPU-6e1b6edc-b8ae-c7f2-5422-34936161d93c"


def test_recorded_gpu_list_of_two_h200() -> None:
    g0, g1 = parse_nvidia_gpus((SMI / "h200x2-gpus-rpc-mixed.csv").read_text())
    assert (g0.index, g0.name, g0.used_mib, g0.total_mib, g0.uuid) == (
        0,
        "NVIDIA H200",
        649.0,
        143771.0,
        GPU0,
    )
    assert g1.bus_id == "0000:00:07.0" and g1.used_mib == 1265.0 and g1.label == "GPU1 (NVIDIA H200)"
    # the five fields of the brief's query (no bus id), and a name with a comma in it
    (old,) = parse_nvidia_gpus(f"0, {GPU0}, NVIDIA H200, 655, 143771\n")
    assert old.bus_id == "" and old.total_mib == 143771.0
    (odd,) = parse_nvidia_gpus("3, GPU-x, Tesla, rev B, [N/A], 81920, 00000000:3B:00.0\n")
    assert (odd.name, odd.used_mib, odd.bus_id) == ("Tesla, rev B", None, "0000:3b:00.0")


def test_recorded_compute_apps_per_gpu_and_pid() -> None:
    index = {GPU0: 0, GPU1: 1}
    # llama-server 7306 on both GPUs, ggml-rpc-server 7294 on GPU1 (see gpu_smi/README.md)
    used = parse_compute_apps((SMI / "h200x2-apps-rpc-mixed.csv").read_text(), index)
    assert used == {(0, 7306): 640.0, (1, 7294): 648.0, (1, 7306): 602.0}
    # an unknown uuid, the old two-field query and junk lines: per process only, or skipped
    text = "12345, GPU-gone, 10\n12345, 1530\n[N/A], [N/A]\n12346, GPU-x, [N/A]\n"
    assert parse_compute_apps(text, index) == {(ALL_GPUS, 12345): 1540.0}


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("00000000:00:06.0", "0000:00:06.0"),
        ("0000:3B:00.0", "0000:3b:00.0"),
        ("unknown id", ""),
        ("x:y:z", ""),
    ],
)
def test_bus_ids_from_nvidia_smi_and_cuda_are_one_form(text: str, norm: str) -> None:
    assert norm_bus_id(text) == norm


def test_rocm_smi_json_fake() -> None:
    snap = parse_rocm((FIX / "rocm_smi" / "showmeminfo-vram-showpids.json").read_text())
    assert [(g.index, g.name) for g in snap.gpus] == [(0, "card0"), (1, "card1")]
    assert snap.gpus[0].total_mib == pytest.approx(68702699520 / 2**20)
    assert snap.gpus[1].used_mib == pytest.approx(1206910976 / 2**20)
    # VRAM per process is summed over its GPUs: no GPU index; "unknown" is skipped
    assert snap.used == {(ALL_GPUS, 41234): 2560.0, (ALL_GPUS, 41250): 1024.0, (ALL_GPUS, 9001): 50.0}
    with pytest.raises(GpuToolError, match="no JSON"):
        parse_rocm("No KFD PIDs currently running\n")


def _fake_tool(folder: Path, name: str, body: str) -> Path:
    """A fake ``name`` on a PATH of its own: a shell script printing canned output."""
    exe = folder / name
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return exe


def test_find_probe_prefers_nvidia_smi_and_notes_absence(tmp_path: Path) -> None:
    probe, note = find_probe(str(tmp_path))
    assert probe is None and note.startswith("no nvidia-smi or rocm-smi")
    _fake_tool(tmp_path, "rocm-smi", "exit 0\n")
    probe, _ = find_probe(str(tmp_path))
    assert isinstance(probe, RocmSmi)
    _fake_tool(tmp_path, "nvidia-smi", "exit 0\n")
    probe, _ = find_probe(str(tmp_path))
    assert isinstance(probe, NvidiaSmi) and probe.name == "nvidia-smi"


def test_a_failing_tool_is_a_note(tmp_path: Path) -> None:
    exe = _fake_tool(tmp_path, "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2; exit 9\n")
    vram = VramSampler([], NvidiaSmi(str(exe)))
    vram.sample()
    assert vram.samples == 0 and vram.peak_mib is None
    assert vram.notes() == [f"{exe} exited 9: NVIDIA-SMI has failed (1 of 1 samples)"]


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two real processes, each leading a process group of its own (as llama-server and an RPC
    server are started)."""
    procs = [subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def fake_nvidia_smi(folder: Path, server: int, rpc: int) -> Path:
    """nvidia-smi answering both queries: ``server`` on both GPUs, ``rpc`` on GPU1, and a
    stranger (pid 1) on GPU0; the GPU list is the recorded one."""
    gpus = (SMI / "h200x2-gpus-rpc-mixed.csv").read_text()
    apps = f"{server}, {GPU0}, 640\n{rpc}, {GPU1}, 648\n{server}, {GPU1}, 602\n1, {GPU0}, 5000\n"
    body = f'case "$1" in\n--query-gpu=*) printf "{gpus}" ;;\n--query-compute-apps=*) printf "{apps}" ;;\n'
    return _fake_tool(folder, "nvidia-smi", body + "*) exit 2 ;;\nesac\n")


def test_sampler_keeps_each_gpus_peak_for_the_lanes_groups(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    server, rpc = sleepers
    exe = fake_nvidia_smi(tmp_path, server.pid, rpc.pid)
    with VramSampler(lane_pgids([server.pid, rpc.pid]), NvidiaSmi(str(exe)), interval_s=3600) as vram:
        pass  # one sample as the thread starts, one on exit
    assert vram.samples == 2 and vram.notes() == []
    assert vram.peak_by_gpu == {0: 640.0, 1: 1250.0} and vram.peak_mib == 1890.0  # pid 1 not counted
    assert vram.device_peak == {0: 649.0, 1: 1265.0} and vram.gpus[1].name == "NVIDIA H200"
    # only llama-server's group: the RPC server's 648 MiB drop out
    alone = VramSampler(lane_pgids([server.pid]), NvidiaSmi(str(exe)))
    alone.sample()
    assert alone.peak_by_gpu == {0: 640.0, 1: 602.0}


def test_peak_is_of_the_sum_over_samples_not_the_sum_of_peaks() -> None:
    vram = VramSampler([], None)
    vram.add(GpuSnapshot(used={(0, 7): 100.0, (1, 7): 10.0}), {7})
    vram.add(GpuSnapshot(used={(0, 7): 20.0, (1, 7): 50.0}), {7})
    assert vram.peak_mib == 110.0 and vram.peak_by_gpu == {0: 100.0, 1: 50.0}


def test_no_tool_no_thread(sleepers: list[subprocess.Popen[bytes]]) -> None:
    vram = VramSampler(lane_pgids([sleepers[0].pid]), None, absent="no nvidia-smi or rocm-smi: x")
    with vram:
        assert not vram._thread.is_alive()
    assert vram.samples == 0 and vram.notes() == ["no nvidia-smi or rocm-smi: x"]


def test_lane_processes_absent_from_the_tool_are_noted(tmp_path: Path) -> None:
    exe = fake_nvidia_smi(tmp_path, 999_999_998, 999_999_999)
    vram = VramSampler([], NvidiaSmi(str(exe)))  # a lane with no process left
    vram.sample()
    assert vram.peak_mib == 0.0
    assert vram.notes() == ["nvidia-smi lists no process of the lane (a CPU lane, or another PID namespace)"]
