"""Memory estimate from the GGUF and the fit check before start (fake /proc/meminfo)."""

from pathlib import Path

import pytest

from lanebench.engines.base import LanePlan
from lanebench.engines.llamacpp import LlamaCpp
from lanebench.errors import BadInput
from lanebench.lanes import LaneSpec
from lanebench.memory.estimate import device_share, estimate_lane
from lanebench.memory.fit import Available, available, fit_problem
from lanebench.memory.gpu import ALL_GPUS, parse_compute_apps
from lanebench.memory.proc import group_pids, mem_available_kib, status_kib
from lanebench.orchestration.memory_step import check_fit

MEMINFO = "MemTotal:       24683520 kB\nMemFree:         1000 kB\nMemAvailable:     204800 kB\n"


def test_kv_matches_shape_arithmetic(gemma_270m: Path) -> None:
    """ctx x layers x kv heads x head_dim x 2 bytes (F16) x 2 (K and V); 15 of 18 layers are SWA
    (window 512) and each of the 2 slots holds ctx / 2 cells."""
    est = estimate_lane(gemma_270m, None, 512, 2, "f16").main
    assert est.kv_mib * 2**20 == 512 * 18 * 1 * 256 * 2 * 2
    big = estimate_lane(gemma_270m, None, 65536, 1, "f16").main
    swa_cells = 512 + 512  # window + n_ubatch
    assert big.kv_mib * 2**20 == (65536 * 3 + swa_cells * 15) * 256 * 2 * 2
    q8 = estimate_lane(gemma_270m, None, 512, 2, "q8_0").main
    assert q8.kv_mib * 2**20 == 512 * 18 * 256 // 32 * 34 * 2
    draft = estimate_lane(gemma_270m, gemma_270m, 512, 2, "f16")
    assert draft.total_mib == pytest.approx(2 * est.total_mib)


def test_refused_with_the_numbers(tmp_path: Path, gemma_270m: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    free = available(meminfo)
    assert free == Available(200.0, None)
    lane = LaneSpec(name="huge ctx", ctx=4_000_000, slots=1)
    plan = LanePlan(lane, LlamaCpp(), 4_000_000, build="llama-server", model=gemma_270m)
    with pytest.raises(BadInput) as exc:
        check_fit([plan], free)
    msg = str(exc.value)
    assert msg.startswith("lane 'huge ctx': needs about ") and "MiB of RAM" in msg
    assert "only 200 MiB is available (MemAvailable)" in msg and "--no-fit-check" in msg
    assert len(msg.splitlines()) == 1
    check_fit([plan], Available(10_000_000.0))  # fits: no error


def test_vram_refusal_and_share(gemma_270m: Path) -> None:
    est = estimate_lane(gemma_270m, None, 512, 1, "f16")
    assert fit_problem("x", est, None, Available(1e9, 1.0)) is None  # not on the GPU
    msg = fit_problem("x", est, -1, Available(1e9, 100.0))
    assert msg is not None and "of VRAM" in msg and "100 MiB is free" in msg
    assert fit_problem("x", est, 999, Available(1e9, None)) is None  # VRAM unknown: no refusal
    assert device_share(9, 18) == 0.5 and device_share(0, 18) == 0.0


def test_proc_and_nvidia_smi_parsing(tmp_path: Path) -> None:
    assert mem_available_kib(MEMINFO) == 204800 and mem_available_kib("MemTotal: 1 kB") is None
    status = "Name:\tllama-server\nVmHWM:\t  345000 kB\nVmRSS:\t  300000 kB\n"
    assert status_kib(status) == {"VmHWM": 345000, "VmRSS": 300000}
    # the older query, nvidia-smi --query-compute-apps=pid,used_memory: per process, no GPU
    smi = "12345, 1530\n12346, 20480\n12345, 10\n[N/A], [N/A]\n"
    assert parse_compute_apps(smi) == {(ALL_GPUS, 12345): 1540.0, (ALL_GPUS, 12346): 20480.0}
    for pid, pgrp in ((10, 7), (11, 7), (12, 9)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (llama server) S 1 {pgrp} {pgrp} 0")
    assert sorted(group_pids(7, tmp_path)) == [10, 11]


def test_sampler_sees_a_real_process_group() -> None:
    import subprocess
    import sys

    from lanebench.memory.proc import RssSampler

    code = "import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.6)"
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        with RssSampler(child.pid, interval_s=0.05) as s:
            child.wait(timeout=20)
    finally:
        child.kill()
    assert s.samples >= 2 and s.peak_kib > 64 * 1024
    # the kernel's RSS counters are per thread and synced lazily, so VmHWM read at one moment can
    # trail a VmRSS read at another by a few pages (seen: 40 KiB of 79 MiB)
    assert s.hwm_total_kib >= s.peak_kib - 1024


def test_sampler_sums_every_process_group_of_the_lane() -> None:
    """llama-server and an RPC server, each leading its own group: peak RSS is their sum."""
    import shutil
    import subprocess
    import time

    from lanebench.memory.proc import RssSampler

    sleep = shutil.which("sleep") or "/bin/sleep"
    procs = [subprocess.Popen([sleep, "60"], start_new_session=True) for _ in range(2)]
    try:
        # a child samples as its forked parent until exec completes: wait until both are `sleep`
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            Path(f"/proc/{p.pid}/comm").read_text().strip() == "sleep" for p in procs
        ):
            time.sleep(0.01)
        time.sleep(0.1)
        for _ in range(20):  # the kernel syncs RSS counters lazily: sample until they hold still
            both = RssSampler([p.pid for p in procs])
            singles = [RssSampler(p.pid) for p in procs]
            for s in (*singles, both):
                s.sample()
            if both.peak_kib == singles[0].peak_kib + singles[1].peak_kib:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert both.pgids == [p.pid for p in procs]
    assert set(both.hwm_kib) == {p.pid for p in procs}
    assert singles[0].peak_kib > 0 and singles[1].peak_kib > 0
    assert both.peak_kib == singles[0].peak_kib + singles[1].peak_kib  # sleeping: RSS holds still
