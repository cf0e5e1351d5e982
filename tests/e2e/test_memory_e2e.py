"""End to end: memory per lane on the real 270M with the real llama-server.

The GGUF estimate (made before start) is checked against the server log's own breakdown
(weights + KV + compute, draft buffers too) within 15% on the three built-in lanes (plain F16 KV,
Q8_0 KV, self-draft); the KV figure against shape arithmetic done here; peak RSS against the
log's host-side buffers. A lane whose ctx needs more memory than the machine has is refused
before any server starts, with the real build's own view of its devices (``--list-devices``) and
defaults (``--help``); where this machine has no GPU, a fake build that lists one
(``tests/fakes/fake_llama_server_devices.sh``) shows the check placing layers on it as b11434 would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli_helpers import FAKES, TINY, lanes_file, one_error_line, run_cli

from lanebench.config.placement import VISIBILITY_ENV
from lanebench.engines.llamacpp.devices import list_devices
from lanebench.memory.asked import Asked
from lanebench.memory.estimate import estimate_lane
from lanebench.memory.fit import lay_out, settings_of
from lanebench.memory.layout import HOST, Device, Machine
from lanebench.memory.proc import mem_available_kib
from lanebench.memory.serverdefaults import AUTO, read_server_defaults

pytestmark = pytest.mark.e2e

MIB = 2**20
# Gemma 3 270M: 18 layers (15 sliding-window, window 512), 1 KV head of 256 dims
LAYERS, KV_HEADS, HEAD_DIM = 18, 1, 256
DEVICES_BIN = FAKES / "fake_llama_server_devices.sh"


def ram_mib() -> float:
    return (mem_available_kib(Path("/proc/meminfo").read_text()) or 0) / 1024


def ctx_beyond(mib: float) -> int:
    """A ctx (1 slot, a multiple of 256) whose KV alone needs more than ``mib``: the 3 full
    layers' K and V, F16, 3,072 B a cell (the compute's KQ mask adds a third: 1,024 B a cell)."""
    return (int(mib * MIB / (3 * 2 * HEAD_DIM * 2)) // 256 + 1) * 256


def test_estimate_within_15_percent_of_the_server_log(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    out = tmp_path / "run.json"
    proc, left = run_cli(tmp_path, "run", *TINY, "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not left
    assert "Memory" in proc.stdout
    lanes = {lane["name"]: lane for lane in json.loads(out.read_text())["lanes"]}
    assert len(lanes) == 3
    for name, lane in lanes.items():
        m = lane["memory"]
        assert m is not None, name
        measured = m["weights"] + m["kv"] + m["compute"] + (m["draft"] or 0.0)
        assert abs(m["estimate"] - measured) <= 0.15 * measured, (name, m)
        assert m["peak_rss"] >= m["log_host"], (name, m)  # every buffer here is in host memory
        assert m["hwm"] >= m["peak_rss"] * 0.99, (name, m)
        per_slot = m["ctx"] // m["slots"]
        assert per_slot <= 512  # below the window: every layer keeps ctx cells
        type_bytes = 2.0 if "Q8_0" not in name else 34 / 32
        kv = m["ctx"] * LAYERS * KV_HEADS * HEAD_DIM * type_bytes * 2 / MIB
        assert m["kv"] == pytest.approx(kv, abs=0.01), (name, m)
        if "self-draft" in name:
            assert m["draft"] == pytest.approx(m["weights"] + m["kv"] + m["compute"], rel=0.01)
        else:
            assert m["draft"] is None


def test_lane_that_cannot_fit_is_refused_before_start(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    devices = list_devices(server_bin) or ()
    ctx = ctx_beyond(ram_mib() + sum(d.free_mib for d in devices))  # more than RAM and every device
    lanes = lanes_file(tmp_path, f'[[lane]]\nname = "too big"\nctx = {ctx}\nslots = 1\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, "--server-bin", str(server_bin))
    line = one_error_line(proc)
    assert line.startswith("lane 'too big': ") and "needs about " in line, line
    if not devices:
        assert "MiB of RAM" in line and "MemAvailable" in line, line
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").glob("*.log"))
    assert not left


def test_gpu_layers_the_server_sees_no_device_for_stay_in_ram(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    """gpu_layers = 999 with every device hidden from the lane (or a CPU-only build): the layers
    go nowhere but RAM, and the check says so with the numbers."""
    hidden = "".join(f'{v} = ""\n' for v in VISIBILITY_ENV)
    body = f'[[lane]]\nname = "ngl"\ngpu_layers = 999\nctx = {ctx_beyond(ram_mib() * 1.2)}\nslots = 1\n'
    proc, left = run_cli(tmp_path, "run", str(lanes_file(tmp_path, body + "[lane.env]\n" + hidden)), *TINY,
                         "--server-bin", str(server_bin))  # fmt: skip
    line = one_error_line(proc)
    assert line.startswith("lane 'ngl': needs about ") and "MiB of RAM" in line, line
    assert "19 of 19 layers on the host" in line and "MemAvailable" in line, line
    assert not left


def test_default_lanes_pass_with_the_builds_own_defaults(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    defaults = read_server_defaults(server_bin)
    assert defaults is not None  # b11434: -ngl auto, --fit on with 1,024 MiB, the draft's cache f16
    assert (defaults.gpu_layers, defaults.fit, defaults.fit_target_mib) == (AUTO, True, 1024.0)
    assert (defaults.draft_cache_k, defaults.draft_cache_v) == ("f16", "f16")
    proc, left = run_cli(tmp_path, "run", *TINY, "--server-bin", str(server_bin), "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("fit check: host ") == 3, proc.stdout
    assert not left


def test_per_device_plan_matches_the_servers_own_buffers(
    tmp_path: Path, server_bin: Path, gemma_270m: Path
) -> None:
    """gpu_layers = 10 over a local RPC server: the plan puts the bottom 9 layers and the input
    layer on the host, the top 9 and the output layer (a copy of the tied embeddings) on RPC0;
    the server log's buffers per device say the same (the host's also hold CPU_REPACK copies)."""
    body = '[[lane]]\nname = "ngl10"\ngpu_layers = 10\nslots = 1\nctx = 4096\nrpc_local = [{}]\n'
    out = tmp_path / "run.json"
    proc, left = run_cli(tmp_path, "run", str(lanes_file(tmp_path, body)), *TINY, "--server-bin",
                         str(server_bin), "--json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not left
    devices = {
        d["device"].split("[")[0]: d for d in json.loads(out.read_text())["lanes"][0]["memory"]["devices"]
    }
    settings = settings_of(Asked(gpu_layers=10), read_server_defaults(server_bin))[0]
    est = estimate_lane(gemma_270m, None, 4096, 1, "f16")
    plan = {u.name: u for u in lay_out(est, settings, Machine(1e6, (), (Device("RPC0", 1e6),))).places}
    assert plan["RPC0"].layers == 10 and plan[HOST].layers == 9
    assert devices["RPC0"]["weights"] == pytest.approx(plan["RPC0"].weights, abs=0.05)
    assert devices["RPC0"]["kv"] == pytest.approx(plan["RPC0"].kv, abs=0.05)
    assert devices[HOST]["kv"] == pytest.approx(plan[HOST].kv, abs=0.05)
    assert plan[HOST].weights <= devices[HOST]["weights"] <= plan[HOST].weights * 1.05


def _fake_gpus(tmp_path: Path, body: str, *gpus_free: float) -> tuple[int, str, str]:
    """``run --dry-run`` of the lanes ``body`` on a build that lists GPUs with these free MiB."""
    listing = ";".join(
        f"CUDA{i}: NVIDIA H200 ({f + 4000:.0f} MiB, {f:.0f} MiB free)" for i, f in enumerate(gpus_free)
    )
    proc, left = run_cli(tmp_path, "run", str(lanes_file(tmp_path, body)), *TINY, "--server-bin",
                         str(DEVICES_BIN), "--dry-run", env={"FAKE_DEVICES": listing})  # fmt: skip
    assert not left and "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def test_a_lane_bigger_than_ram_passes_when_a_gpu_holds_it(tmp_path: Path, gemma_270m: Path) -> None:
    """The issue's case in small: gpu_layers unset, KV 1.5 x RAM, one GPU with 4 x RAM free:
    b11434 (-ngl auto, --fit on) puts every layer on the GPU; only the input layer stays home."""
    ram = ram_mib()
    body = f'[[lane]]\nname = "big"\nctx = {ctx_beyond(ram * 1.5)}\nslots = 1\n'
    code, out, err = _fake_gpus(tmp_path, body, ram * 4)
    assert code == 0, err
    assert "0 of 19 layers; CUDA0 " in out and "19 of 19 layers" in out, out


def test_split_none_uses_main_gpu_only(tmp_path: Path, gemma_270m: Path) -> None:
    """GPU0 nearly full, GPU1 with room: split none on GPU1 passes; on GPU0 (fit off) it is
    refused naming GPU0 and its numbers, never the two GPUs' sum."""
    ram = ram_mib()
    lane = f'[[lane]]\nname = "sm none"\nctx = {ctx_beyond(ram * 1.5)}\nslots = 1\nsplit_mode = "none"\n'
    code, out, err = _fake_gpus(tmp_path, lane + "main_gpu = 1\n", 500, ram * 4)
    assert code == 0, err
    assert "CUDA1 " in out and "CUDA0 " not in out.split("fit check:")[1], out
    code, out, err = _fake_gpus(tmp_path, lane + 'main_gpu = 0\nextra_args = ["-fit", "off"]\n', 500, ram * 4)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code != 0 and len(lines) == 1, err
    assert (
        "lane 'sm none': CUDA0 needs about " in lines[0]
        and "only 500 MiB is free (--list-devices)" in lines[0]
    )
