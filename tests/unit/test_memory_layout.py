"""The fit check's per-device plan (pure): llama-server's device choice, layer split and --fit
replayed on an estimate and each device's free memory. All figures MiB."""

from __future__ import annotations

import pytest

from lanebench.config.lanes import LaneSpec
from lanebench.config.placement import RpcLocal
from lanebench.memory.asked import Asked, asked_of
from lanebench.memory.estimate import LaneEstimate, LayerEstimate, ModelEstimate
from lanebench.memory.fit import lay_out, local_rpc_devices, problems, settings_of, summary
from lanebench.memory.layout import HOST, Device, Machine, Settings, Use, assign, margin_of, split_points
from lanebench.memory.serverdefaults import ALL, AUTO, B11434, ServerDefaults


def model(
    n_layer: int = 30,
    dense: float = 4000.0,
    experts: float = 0.0,
    kv: float = 300.0,
    inputs: float = 500.0,
    out: float = 1000.0,
    act: float = 3996.0,
    logits: float = 4.0,
) -> ModelEstimate:
    """30 layers of 4,000 + 300 KV, 500 input, 1,000 output, 4,000 compute: 134,500 in all."""
    layers = tuple(LayerEstimate(dense, experts, kv) for _ in range(n_layer))
    return ModelEstimate(
        inputs + n_layer * (dense + experts) + out,
        n_layer * kv,
        act + logits,
        n_layer,
        input_mib=inputs,
        layers=layers,
        output_mib=out,
        output_host_mib=out,
        activations_mib=act,
        logits_mib=logits,
    )


LANE = LaneEstimate(model())
H200 = Device("CUDA0", 139_000.0)


def places(layout_places: list[Use]) -> dict[str, Use]:
    return {u.name: u for u in layout_places}


def b11434(asked: Asked = Asked()) -> Settings:
    return settings_of(asked, B11434)[0]


def test_the_issue_case_fits_on_one_gpu() -> None:
    """134,500 MiB lane, 120,000 MiB RAM, 139,000 MiB free on one GPU, gpu_layers unset: b11434
    offers every layer to the GPU (-ngl auto), which keeps its 1,024 MiB margin: it fits."""
    assert LANE.total_mib == 134_500
    layout = lay_out(LANE, b11434(), Machine(120_000.0, (H200,)))
    assert problems("big", layout) == []
    got = places(layout.places)
    assert got[HOST].need_mib == pytest.approx(4_500)  # input layer, output buffer, host compute
    assert got["CUDA0"].need_mib == pytest.approx(133_996) and got["CUDA0"].layers == 31
    assert not layout.fitted and not layout.notes
    assert summary(layout) == (
        "fit check: host 4,500 MiB of 120,000 free, 0 of 31 layers; "
        "CUDA0 133,996 MiB of 139,000 free, 31 of 31 layers"
    )


def test_no_gpu_layers_puts_it_all_in_ram() -> None:
    layout = lay_out(LANE, b11434(Asked(gpu_layers=0)), Machine(120_000.0, (H200,)))
    (line,) = problems("big", layout)
    assert line.startswith("lane 'big': needs about 134,500 MiB of RAM (weights 121,500 + KV 9,000")
    assert "31 of 31 layers on the host" in line and "only 120,000 MiB is available (MemAvailable)" in line


@pytest.mark.parametrize(
    ("free", "ram", "refused"),
    [
        (100_000.0, 120_000.0, None),  # --fit: 22 slots on the GPU, 9 layers (38,700) in RAM
        (100_000.0, 40_000.0, "needs about 43,200 MiB of RAM"),
        (3_000.0, 120_000.0, "needs about 134,500 MiB of RAM"),  # not even the output layer fits
    ],
)
def test_fit_moves_the_bottom_layers_to_the_host(free: float, ram: float, refused: str | None) -> None:
    layout = lay_out(LANE, b11434(), Machine(ram, (Device("CUDA0", free),)))
    found = problems("big", layout)
    if refused is None:
        assert found == []
    else:
        assert len(found) == 1 and refused in found[0]
    got = places(layout.places)
    assert got["CUDA0"].need_mib <= free - 1024 or got["CUDA0"].layers == 0
    assert got[HOST].layers + got["CUDA0"].layers == 31
    if free == 100_000.0:
        assert layout.fitted and got["CUDA0"].layers == 22 and got[HOST].layers == 9
        assert "--fit kept some layers on the host" in summary(layout)


@pytest.mark.parametrize(
    "asked",
    [Asked(fit=False), Asked(gpu_layers=999), Asked(gpu_layers=ALL)],
    ids=["fit off", "ngl 999", "ngl all"],
)
def test_without_fit_a_gpu_too_small_refuses_naming_it(asked: Asked) -> None:
    layout = lay_out(LANE, b11434(asked), Machine(120_000.0, (Device("CUDA0", 100_000.0),)))
    (line,) = problems("big", layout)
    assert line.startswith("lane 'big': CUDA0 needs about 133,996 MiB (weights 121,000 + KV 9,000")
    assert "31 of 31 layers" in line and "only 100,000 MiB is free (--list-devices)" in line


def test_fit_target_margin_is_the_lanes_or_the_builds() -> None:
    tight = Machine(120_000.0, (Device("CUDA0", 134_500.0),))  # 504 MiB left with every layer on it
    assert lay_out(LANE, b11434(), tight).fitted  # b11434 keeps 1,024 MiB free: a layer moves out
    assert not lay_out(LANE, b11434(Asked(fit_target_mib=(256.0,))), tight).fitted


GPU0_FULL = (Device("CUDA0", 500.0), Device("CUDA1", 139_000.0))


def test_split_none_on_gpu1_with_gpu0_full() -> None:
    layout = lay_out(LANE, b11434(Asked(split_mode="none", main_gpu=1)), Machine(120_000.0, GPU0_FULL))
    assert problems("g1", layout) == []
    got = places(layout.places)
    assert "CUDA0" not in got and got["CUDA1"].layers == 31


def test_split_none_on_the_full_gpu0_is_refused_there_without_fit() -> None:
    asked = Asked(split_mode="none", main_gpu=0, fit=False)
    (line,) = problems("g0", lay_out(LANE, b11434(asked), Machine(120_000.0, GPU0_FULL)))
    assert line.startswith("lane 'g0': CUDA0 needs about 133,996 MiB") and "only 500 MiB is free" in line


def test_split_none_never_counts_the_other_gpu() -> None:
    """Two GPUs of 70,000 free: 140,000 together, but -sm none uses one."""
    two = (Device("CUDA0", 70_000.0), Device("CUDA1", 70_000.0))
    (line,) = problems("x", lay_out(LANE, b11434(Asked(split_mode="none", fit=False)), Machine(1e6, two)))
    assert "CUDA0 needs about 133,996 MiB" in line and "only 70,000 MiB is free" in line
    # with --fit, GPU0 takes 15 slots and the rest stays in RAM (73,300 MiB)
    fitted = lay_out(LANE, b11434(Asked(split_mode="none")), Machine(60_000.0, two))
    (line,) = problems("x", fitted)
    assert "needs about 73,300 MiB of RAM" in line and "16 of 31 layers on the host" in line


def test_default_split_with_gpu0_full_fits_on_gpu1() -> None:
    """By free memory GPU0 would get layer 0; --fit refills back to front and GPU1 takes all."""
    layout = lay_out(LANE, b11434(), Machine(120_000.0, GPU0_FULL))
    assert problems("x", layout) == [] and layout.fitted
    got = places(layout.places)
    assert got["CUDA1"].layers == 31 and got["CUDA0"].need_mib == 0


def test_split_points_and_assign_follow_llama_cpp() -> None:
    assert split_points([Device("A", 1.0), Device("B", 3.0)], None) == [0.25, 1.0]
    assert split_points([Device("A", None), Device("B", 3.0)], [3, 1]) == [0.75, 1.0]
    assert split_points([Device("A", None), Device("B", 3.0)], None) is None  # unknown free
    assert split_points([Device("A", None)], None) == [1.0]
    assert assign(5, 5, [0.5, 1.0]) == [0, 0, 0, 1, 1]  # the last device takes the output layer
    assert assign(5, 2, [1.0]) == [-1, -1, -1, 0, 0]  # -ngl 2: the top slots offloaded


RPC0 = Device("RPC0", 80_000.0, "RPC server 10.0.0.2:50052")


def test_rpc_layers_are_charged_to_the_rpc_device_not_local_vram() -> None:
    layout = lay_out(LANE, b11434(), Machine(120_000.0, (Device("CUDA0", 70_000.0),), (RPC0,)))
    assert problems("rpc", layout) == []
    got = places(layout.places)
    assert [u.name for u in layout.places] == [HOST, "RPC0", "CUDA0"]  # RPC devices come first
    assert got["RPC0"].layers == 17 and got["CUDA0"].layers == 14
    assert got["CUDA0"].need_mib == pytest.approx(13 * 4300 + 1000 + 3996)


def test_rpc_device_of_unknown_memory_is_not_checked_and_says_so() -> None:
    unknown = Device("RPC0", None, "rpc_local[0], starts with the lane")
    machine = Machine(120_000.0, (Device("CUDA0", 1_000.0),), (unknown,))
    layout = lay_out(LANE, b11434(), machine)
    assert problems("rpc", layout) == []  # the split follows RPC0's free memory, not known
    assert any("not known for RPC0" in n for n in layout.notes)
    # a given tensor_split fixes CUDA0's half: that is checked
    (line,) = problems("rpc", lay_out(LANE, b11434(Asked(tensor_split=(1.0, 1.0))), machine))
    assert "CUDA0 needs about" in line and "only 1,000 MiB is free" in line


def test_local_rpc_server_on_a_cpu_machine_is_this_machines_ram() -> None:
    rpc = tuple(local_rpc_devices(RpcLocal(), 0, 0, (), 120_000.0))
    assert rpc == (Device("RPC0", 120_000.0, "rpc_local[0], starts with the lane: this machine's RAM", HOST),)
    (line,) = problems("cpu rpc", lay_out(LANE, b11434(), Machine(120_000.0, (), rpc)))
    assert (
        "needs about" in line and "MiB of RAM" in line and "31 of 31 layers on the host (with RPC0)" in line
    )
    gpus = (Device("CUDA0", 10.0), Device("CUDA1", 20.0))
    on_gpu1 = local_rpc_devices(RpcLocal(devices=["CUDA1"]), 1, 2, gpus, 1.0)
    assert on_gpu1 == [
        Device("RPC2", 20.0, "rpc_local[1], starts with the lane: this machine's CUDA1", "CUDA1")
    ]
    hidden = local_rpc_devices(RpcLocal(env={"CUDA_VISIBLE_DEVICES": "1"}), 0, 0, gpus, 1.0)
    assert hidden[0].free_mib is None and hidden[0].shares is None


def test_draft_is_placed_first_and_fit_makes_room_for_it() -> None:
    draft = model(n_layer=10, dense=200.0, kv=50.0, inputs=100.0, out=100.0, act=96.0)
    lane = LaneEstimate(model(), draft)
    layout = lay_out(lane, b11434(), Machine(120_000.0, (Device("CUDA0", 136_000.0),)))
    got = places(layout.places)
    assert got["CUDA0"].draft == pytest.approx(10 * 250 + 100 + 96)  # all of the draft's slots
    assert layout.fitted and got[HOST].layers == 1  # one main layer moved out for it
    assert got["CUDA0"].need_mib <= 136_000 - 1024


def test_moe_experts_go_to_the_host_first_then_come_back() -> None:
    moe = LaneEstimate(model(dense=1000.0, experts=3000.0))
    layout = lay_out(moe, b11434(), Machine(120_000.0, (Device("CUDA0", 60_000.0),)))
    got = places(layout.places)
    assert got["CUDA0"].layers == 31 and got["CUDA0"].need_mib == pytest.approx(60_000 - 1024)
    assert got[HOST].weights == pytest.approx(500 + 90_000 - (58_976 - (30 * 1300 + 4996)))
    assert problems("moe", layout) == []


def test_overrides_check_only_the_total() -> None:
    asked = asked_of(LaneSpec(name="x", extra_args=["-cmoe"]), {})
    layout = lay_out(LANE, b11434(asked), Machine(100_000.0, (Device("CUDA0", 30_000.0),)))
    assert layout.total_only and "-cmoe place tensors" in layout.notes[0]
    assert problems("x", layout) == [
        "lane 'x': needs about 134,500 MiB in all but RAM and its devices have only 130,000 MiB free; "
        "lower ctx/slots, or pass --no-fit-check"
    ]


@pytest.mark.parametrize(
    ("asked", "ram", "refused"),
    [
        (Asked(), 10_000.0, False),  # auto: the layers are assumed to go to the unknown devices
        (Asked(gpu_layers=10), 60_000.0, True),  # 21 layers stay on the host whatever the devices
    ],
)
def test_unknown_devices_refuse_only_what_is_certain(asked: Asked, ram: float, refused: bool) -> None:
    layout = lay_out(LANE, b11434(asked), Machine(ram, None))
    assert bool(problems("x", layout)) is refused
    assert any("devices here are not known" in n for n in layout.notes)
    if refused:
        assert "needs about 94,800 MiB of RAM" in problems("x", layout)[0]


def test_cpu_only_build_puts_gpu_layers_in_ram() -> None:
    """A build that lists no device: -ngl 999 offloads nothing."""
    (line,) = problems("x", lay_out(LANE, b11434(Asked(gpu_layers=999)), Machine(120_000.0, ())))
    assert "needs about 134,500 MiB of RAM" in line


def test_kv_offload_off_keeps_kv_on_the_host() -> None:
    got = places(lay_out(LANE, b11434(Asked(kv_offload=False)), Machine(1e6, (H200,))).places)
    assert got[HOST].kv == 9_000 and got["CUDA0"].kv == 0


def test_unknown_defaults_are_assumed_and_said() -> None:
    s, notes = settings_of(Asked(), ServerDefaults())  # a help that states nothing
    assert (s.gpu_layers, s.fit, s.margins_mib) == (AUTO, True, (1024.0,))
    assert any(n.startswith("-ngl: the build's --help states no default; assumed auto") for n in notes)
    s, notes = settings_of(Asked(), None)
    assert notes == ["the build's --help could not be read: assumed b11434's defaults (-ngl auto, --fit on)"]


def test_fit_target_list_pads_with_the_builds_margin() -> None:
    s = b11434(Asked(fit_target_mib=(256.0, 512.0)))
    assert [margin_of(s, i) for i in range(3)] == [256.0, 512.0, 1024.0]
    assert [margin_of(b11434(Asked(fit_target_mib=(64.0,))), i) for i in range(3)] == [64.0] * 3


def test_attention_scratch_goes_where_layers_run() -> None:
    est = model()
    est.attention_mib = 256.0
    all_gpu = places(lay_out(LaneEstimate(est), b11434(), Machine(1e6, (H200,))).places)
    assert all_gpu["CUDA0"].compute == pytest.approx(3996 + 256) and all_gpu[HOST].compute == 4000
    some = places(lay_out(LaneEstimate(est), b11434(Asked(gpu_layers=10)), Machine(1e6, (H200,))).places)
    assert some[HOST].compute == 4000 + 256 and some["CUDA0"].compute == 3996 + 256
    only_output = places(
        lay_out(LaneEstimate(est), b11434(Asked(gpu_layers=1)), Machine(1e6, (H200,))).places
    )
    assert only_output["CUDA0"].compute == 3996  # the output layer runs no attention
