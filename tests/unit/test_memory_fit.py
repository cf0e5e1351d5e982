"""Memory estimate from the GGUF, what the server will be told and what it defaults to, and the
fit check before start on the real 270M GGUF with a given machine (the pure per-device plan is
tests/unit/test_memory_layout.py)."""

from pathlib import Path

import pytest
from tests.cli_helpers import EXITS_ON_START

from lanebench.config.lanes import Draft, LaneSpec
from lanebench.engines.base import LanePlan
from lanebench.engines.llamacpp.engine import LlamaCpp
from lanebench.errors import BadInput
from lanebench.memory.asked import Asked, asked_of
from lanebench.memory.estimate import estimate_lane
from lanebench.memory.fit import draft_cache, ram_available_mib
from lanebench.memory.gpu import ALL_GPUS, parse_compute_apps
from lanebench.memory.layout import Device, Machine
from lanebench.memory.proc import group_pids, mem_available_kib, status_kib
from lanebench.memory.serverdefaults import ALL, AUTO, B11434, parse_server_defaults
from lanebench.orchestration.memory_step import check_fit, plan_estimate

MEMINFO = "MemTotal:       24683520 kB\nMemFree:         1000 kB\nMemAvailable:     204800 kB\n"
HELP = Path(__file__).resolve().parents[1] / "fixtures" / "help" / "b11434.help"


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


def test_estimate_splits_by_layer_as_llama_cpp_places_it(gemma_270m: Path) -> None:
    """Input (token embeddings, host), 18 layers, and an output tied to the embeddings: a copy
    of them where it runs on a device, only its norm where it stays on the host."""
    est = estimate_lane(gemma_270m, None, 512, 2, "f16").main
    assert len(est.layers) == 18 and est.n_layer == 18
    weights = est.input_mib + sum(x.dense_mib + x.experts_mib for x in est.layers) + est.output_host_mib
    assert weights == pytest.approx(est.weights_mib)
    assert sum(x.kv_mib for x in est.layers) == pytest.approx(est.kv_mib)
    assert est.output_host_mib < 0.01 and est.output_mib > 0.9 * est.input_mib  # tied output
    assert all(x.experts_mib == 0 for x in est.layers)
    assert est.activations_mib + est.logits_mib + est.attention_mib == pytest.approx(est.compute_mib)


@pytest.mark.parametrize(
    ("ctx", "slots", "flash_attn", "scratch_mib"),
    [
        (262144, 1, True, 262144 * 512 * 2 / 2**20),  # the F16 KQ mask of a 262,144-cell sequence
        (262144, 2, True, 131072 * 512 * 2 / 2**20),  # two slots: ctx / 2 cells each (KV not unified)
        (262144, 1, False, 262144 * 512 * 4 * (1 + 4) / 2**20),  # F32 mask + the 4 heads' scores
    ],
)
def test_compute_counts_the_attention_scratch(
    gemma_270m: Path, ctx: int, slots: int, flash_attn: bool, scratch_mib: float
) -> None:
    """b11434's CPU compute buffer for these was 275.3, 147.3 and 2,574.3 MiB (module note)."""
    est = estimate_lane(gemma_270m, None, ctx, slots, "f16", flash_attn=flash_attn).main
    assert est.attention_mib == scratch_mib
    assert est.compute_mib == pytest.approx(est.activations_mib + est.logits_mib + scratch_mib)


@pytest.mark.parametrize(
    ("lane_kv", "extra", "expected"),
    [
        ("q8_0", [], ("f16", "f16")),  # b11434 never hands the lane's kv to the draft
        ("f16", ["-ctkd", "q8_0", "-ctvd", "q8_0"], ("q8_0", "q8_0")),
        ("q4_0", ["--spec-draft-type-k", "q8_0"], ("q8_0", "f16")),
    ],
)
def test_draft_kv_is_the_builds_default_unless_ctkd_is_passed(
    gemma_270m: Path, lane_kv: str, extra: list[str], expected: tuple[str, str]
) -> None:
    lane = LaneSpec(name="d", kv=lane_kv, draft=Draft(kind="model"), extra_args=extra)
    (k, v), notes = draft_cache(asked_of(lane, {}), B11434, lane.kv)
    assert (k, v) == expected and notes == []
    est = estimate_lane(gemma_270m, gemma_270m, 512, 2, lane_kv, (k, v))
    f16 = estimate_lane(gemma_270m, None, 512, 2, "f16").main.kv_mib
    q8 = estimate_lane(gemma_270m, None, 512, 2, "q8_0").main.kv_mib
    assert est.draft is not None
    assert est.draft.kv_mib == pytest.approx(
        {"f16": f16, "q8_0": q8}[k] / 2 + {"f16": f16, "q8_0": q8}[v] / 2
    )


def test_draft_kv_of_an_unknown_build_is_the_smaller_and_said() -> None:
    assert draft_cache(Asked(), None, "q8_0") == (
        ("q8_0", "q8_0"),
        [
            "-ctkd: the build's default is not known; assumed q8_0",
            "-ctvd: the build's default is not known; assumed q8_0",
        ],
    )
    assert draft_cache(Asked(), None, "f32")[0] == ("f16", "f16")


def test_plan_estimate_reads_the_draft_kv_default_from_the_build(gemma_270m: Path) -> None:
    lane = LaneSpec(name="d", kv="q8_0", draft=Draft(kind="model"))
    plan = LanePlan(lane, LlamaCpp(), 512, build="fake", server_bin=EXITS_ON_START, model=gemma_270m)
    est = plan_estimate(plan)
    assert est is not None and est.draft is not None
    assert est.draft.kv_mib == pytest.approx(estimate_lane(gemma_270m, None, 512, 2, "f16").main.kv_mib)


def test_server_defaults_from_the_builds_help() -> None:
    text = HELP.read_text()
    assert parse_server_defaults(text) == B11434
    assert (B11434.gpu_layers, B11434.fit, B11434.fit_target_mib, B11434.draft_cache_k) == (
        AUTO,
        True,
        1024,
        "f16",
    )
    no_fit = "\n".join(line for line in text.splitlines() if not line.startswith("-fit,"))
    assert parse_server_defaults(no_fit).fit is False  # no --fit: the build cannot fit
    older = text.replace("(default: auto)", "")
    assert parse_server_defaults(older).gpu_layers is None  # not stated: unknown


def test_asked_env_then_fields_then_extra_args() -> None:
    env = {"LLAMA_ARG_N_GPU_LAYERS": "10", "LLAMA_ARG_FIT": "off", "LLAMA_ARG_SPLIT_MODE": "row"}
    assert asked_of(LaneSpec(name="x"), env) == Asked(gpu_layers=10, fit=False, split_mode="row")
    lane = LaneSpec(name="x", gpu_layers=20, split_mode="none", main_gpu=1)
    assert asked_of(lane, env) == Asked(gpu_layers=20, fit=False, split_mode="none", main_gpu=1)
    extra = ["-ngl", "all", "-ts", "3,1", "-nkvo", "-fitt", "512", "-dev", "CUDA1,RPC0", "-ot", "x=CPU"]
    got = asked_of(lane.model_copy(update={"extra_args": extra}), {})
    assert got == Asked(
        gpu_layers=ALL,
        split_mode="none",
        main_gpu=1,
        tensor_split=(3.0, 1.0),
        kv_offload=False,
        fit_target_mib=(512.0,),
        devices=("CUDA1", "RPC0"),
        overrides=("-ot",),
    )
    assert asked_of(LaneSpec(name="x", gpu_layers=-1), {}).gpu_layers == AUTO  # -ngl -1 is auto in b11434


def test_refused_with_the_numbers(tmp_path: Path, gemma_270m: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    assert ram_available_mib(meminfo) == 200.0
    lane = LaneSpec(name="huge ctx", ctx=4_000_000, slots=1)
    plan = LanePlan(lane, LlamaCpp(), 4_000_000, build="llama-server", model=gemma_270m)
    with pytest.raises(BadInput) as exc:
        check_fit([plan], lambda p: Machine(200.0, ()))
    msg = str(exc.value)
    assert msg.startswith("lane 'huge ctx': needs about ") and "MiB of RAM" in msg
    assert "only 200 MiB is available (MemAvailable)" in msg and "--no-fit-check" in msg
    assert len(msg.splitlines()) == 1
    check_fit([plan], lambda p: Machine(10_000_000.0, ()))  # fits: no error
    assert plan.fit_notes[0].startswith("fit check: host ")


def test_a_lane_bigger_than_ram_fits_on_a_gpu_with_room(gemma_270m: Path) -> None:
    """gpu_layers unset: b11434 offers every layer to the GPU (-ngl auto, --fit on)."""
    lane = LaneSpec(name="huge ctx", ctx=4_000_000, slots=1)
    plan = LanePlan(lane, LlamaCpp(), 4_000_000, build="fake", server_bin=EXITS_ON_START, model=gemma_270m)
    check_fit([plan], lambda p: Machine(2_000.0, (Device("CUDA0", 139_000.0),)))
    host, gpu = plan.fit_notes[0].removeprefix("fit check: ").split("; ")[:2]
    assert host.endswith("0 of 19 layers") and gpu.startswith("CUDA0 ") and gpu.endswith("19 of 19 layers")
    small = Machine(2_000.0, (Device("CUDA0", 5_000.0),))
    with pytest.raises(BadInput, match=r"needs about [\d,]+ MiB of RAM .*18 of 19 layers on the host"):
        check_fit([plan], lambda p: small)  # --fit keeps only the output layer on the GPU
    plan.lane = lane.model_copy(update={"extra_args": ["-fit", "off"]})
    with pytest.raises(BadInput, match=r"CUDA0 needs about [\d,]+ MiB .* only 5,000 MiB is free"):
        check_fit([plan], lambda p: small)


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
