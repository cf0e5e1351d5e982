"""Fit before start (pure): the lane's memory place by place (``layout``) against what is free
there; a lane is refused only where the numbers show it cannot fit, one line per place naming
the lane, the place and the numbers. Where a fact is unknown (a default the build's help does
not state, devices it does not list, an RPC server not yet running) nothing is refused on a
guess: the layout's notes say what was assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from lanebench.analysis.roofline import type_nbytes
from lanebench.config.placement import VISIBILITY_ENV, RpcLocal
from lanebench.memory.asked import Asked
from lanebench.memory.estimate import LaneEstimate, ModelEstimate
from lanebench.memory.layout import (
    HOST,
    Device,
    Layout,
    Machine,
    Settings,
    Use,
    assign,
    charge,
    model_devices,
    offloaded,
    place_main,
    split_points,
)
from lanebench.memory.proc import mem_available_kib
from lanebench.memory.serverdefaults import AUTO, ServerDefaults

KIB_PER_MIB = 1024


def ram_available_mib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """MemAvailable in MiB; None when it cannot be read."""
    try:
        kib = mem_available_kib(meminfo.read_text())
    except OSError:
        return None
    return kib / KIB_PER_MIB if kib is not None else None


T = TypeVar("T")


def _pick(given: T | None, default: T | None, fallback: T, flag: str, notes: list[str], read: bool) -> T:
    if given is not None:
        return given
    if default is not None:
        return default
    if read:
        shown = "on" if fallback is True else "auto" if fallback == AUTO else str(fallback)
        notes.append(f"{flag}: the build's --help states no default; assumed {shown}")
    return fallback


def settings_of(asked: Asked, defaults: ServerDefaults | None) -> tuple[Settings, list[str]]:
    """The server's placement: what the lane sets, else the build's default, else b11434's
    (the most room: auto layers, --fit on), said in a note."""
    notes: list[str] = []
    d, read = defaults or ServerDefaults(), defaults is not None
    if not read:
        notes.append("the build's --help could not be read: assumed b11434's defaults (-ngl auto, --fit on)")
    fit_read = read and d.fit is not False
    default_margin = _pick(None, d.fit_target_mib, 1024.0, "-fitt", notes, fit_read)
    s = Settings(
        gpu_layers=_pick(asked.gpu_layers, d.gpu_layers, AUTO, "-ngl", notes, read),
        draft_gpu_layers=_pick(asked.draft_gpu_layers, d.draft_gpu_layers, AUTO, "-ngld", notes, read),
        fit=_pick(asked.fit, d.fit, True, "--fit", notes, read),
        margins_mib=asked.fit_target_mib or (default_margin,),
        margin_default_mib=default_margin,
        split_mode=_pick(asked.split_mode, d.split_mode, "layer", "-sm", notes, read),
        main_gpu=_pick(asked.main_gpu, d.main_gpu, 0, "-mg", notes, read),
        tensor_split=asked.tensor_split,
        devices=asked.devices,
        draft_devices=asked.draft_devices,
        kv_offload=_pick(asked.kv_offload, d.kv_offload, True, "-kvo", notes, read),
        overrides=asked.overrides,
    )
    return s, notes


def local_rpc_devices(
    entry: RpcLocal, index: int, first: int, local: tuple[Device, ...] | None, ram_mib: float | None
) -> list[Device]:
    """The RPC devices of ``rpc_local[index]`` (named from ``RPC<first>``): a ggml-rpc-server of
    the same build on this machine serves its ``devices``, else every accelerator here, else
    the CPU, so its memory is this machine's RAM or one of its devices (``shares``). Not known
    when the build's devices are not, or the entry's env changes which devices it sees."""
    src = f"rpc_local[{index}], starts with the lane"
    if local is None or any(v in entry.env for v in VISIBILITY_ENV):
        return [Device(f"RPC{first + j}", None, src) for j in range(len(entry.devices or [None]))]
    by_name = {d.name: d for d in local}
    names = list(entry.devices) if entry.devices else ([d.name for d in local] or ["CPU"])
    out = []
    for j, name in enumerate(names):
        if name == "CPU":
            out.append(Device(f"RPC{first + j}", ram_mib, f"{src}: this machine's RAM", shares=HOST))
        elif name in by_name:
            dev = by_name[name]
            out.append(Device(f"RPC{first + j}", dev.free_mib, f"{src}: this machine's {name}", shares=name))
        else:
            out.append(Device(f"RPC{first + j}", None, src))
    return out


def _bytes_per_256(kv_type: str) -> int:
    return type_nbytes(kv_type, 256, "KV cache type")


def draft_cache(
    asked: Asked, defaults: ServerDefaults | None, lane_kv: str
) -> tuple[tuple[str, str], list[str]]:
    """The draft's (K, V) cache types: -ctkd/-ctvd where given, else the build's defaults (f16 in
    b11434: the lane's ``kv`` does not reach the draft); unknown: the smaller of the lane's and f16."""
    notes: list[str] = []
    out = []
    for given, default, flag in (
        (asked.draft_cache_k, defaults.draft_cache_k if defaults else None, "-ctkd"),
        (asked.draft_cache_v, defaults.draft_cache_v if defaults else None, "-ctvd"),
    ):
        kind = given or default
        if kind is None:
            kind = min((lane_kv, "f16"), key=_bytes_per_256)
            notes.append(f"{flag}: the build's default is not known; assumed {kind}")
        out.append(kind)
    return (out[0], out[1]), notes


def _devices(
    names: Sequence[str] | None, split: str, s: Settings, m: Machine, notes: list[str]
) -> tuple[list[Device], list[float]]:
    """A model's devices and split; when either is unknown, its devices as one place, unchecked."""
    devs = model_devices(names, split, s.main_gpu, m)
    if devs is None:
        notes.append(
            "this build's devices here are not known (no --list-devices answer): what it offers "
            "them is assumed to fit there; the host's share is checked"
        )
        devs = [Device("the build's devices", None, "not known")]
    if len(devs) > 1 and s.split_mode in ("row", "tensor"):
        notes.append(f"-sm {s.split_mode}: modelled as a layer split")
    cum = split_points(devs, s.tensor_split)
    if cum is None:
        unknown = ", ".join(d.name for d in devs if d.free_mib is None)
        notes.append(
            f"the split over {', '.join(d.name for d in devs)} follows their free memory, not known "
            f"for {unknown}: checked together as one place, not per device"
        )
        devs, cum = [Device(" + ".join(d.name for d in devs), None, "split not known")], [1.0]
    return devs, cum


def _draft(
    est: ModelEstimate, s: Settings, m: Machine, uses: dict[str, Use], host: Use, notes: list[str]
) -> None:
    names = s.draft_devices or s.devices
    split = "layer" if s.draft_devices and len(s.draft_devices) == 1 else s.split_mode
    devs, cum = _devices(names, split, s, m, notes)
    places = [uses.setdefault(d.name, Use(d.name, d.free_mib, d.source)) for d in devs]
    if not est.layers:  # the draft's shape could not be read: all of it in one place
        notes.append("the draft's layers could not be read from its GGUF: its total is placed whole")
        (host if not devs or s.draft_gpu_layers == 0 else places[0]).draft += est.total_mib
        return
    n = len(est.layers) + 1
    owners = assign(n, offloaded(s.draft_gpu_layers, n, len(devs)), cum)
    charge(est, owners, places, host, kv_offload=s.kv_offload, draft=True)


def _fold_shares(places: list[Use], m: Machine) -> list[Use]:
    """Places whose memory is another's (a local RPC server's device) charged to that one."""
    known = {d.name: d for d in (*m.rpc, *(m.local or ()))}
    out = {p.name: p for p in places}
    for u in places[1:]:
        target = known[u.name].shares if u.name in known else None
        if target is None:
            continue
        if target not in out:
            dev = known.get(target)
            out[target] = Use(target, dev.free_mib if dev else None, dev.source if dev else "not known")
        out[target].add(u)
        del out[u.name]
    return list(out.values())


def _total_only(layout: Layout, s: Settings, m: Machine, why: str) -> Layout:
    layout.total_only = True
    layout.notes.append(why)
    devs = model_devices(s.devices, s.split_mode, s.main_gpu, m)
    if m.ram_mib is not None and devs is not None and all(d.free_mib is not None for d in devs):
        layout.capacity_mib = m.ram_mib + sum(d.free_mib or 0.0 for d in devs if d.shares is None)
    return layout


def lay_out(est: LaneEstimate, s: Settings, m: Machine) -> Layout:
    """The lane's memory per place (host first) as the server will place it (see ``layout``)."""
    host = Use(HOST, m.ram_mib, "MemAvailable")
    layout = Layout([host], n_slots=len(est.main.layers) + 1, total_mib=est.total_mib)
    if s.overrides:
        flags = ", ".join(s.overrides)
        why = f"{flags} place tensors in ways not modelled here: only the lane's total is checked"
        return _total_only(layout, s, m, why)
    if not est.main.layers:
        return _total_only(
            layout, s, m, "the model's layers could not be read from its GGUF: only its total is checked"
        )
    uses: dict[str, Use] = {}
    if est.draft is not None:
        _draft(est.draft, s, m, uses, host, layout.notes)
    devs, cum = _devices(s.devices, s.split_mode, s, m, layout.notes)
    main = [uses.setdefault(d.name, Use(d.name, d.free_mib, d.source)) for d in devs]
    placed = place_main(est.main, devs, cum, s, [u.draft for u in main])
    charge(est.main, placed.owners, main, host, kv_offload=s.kv_offload, experts_home=placed.experts_home)
    for u, back in zip(main, placed.absorbed, strict=True):
        u.weights, host.weights = u.weights + back, host.weights - back
    layout.fitted = placed.fitted
    order = [*main, *(u for u in uses.values() if u not in main)]
    layout.places = _fold_shares([host, *order], m)
    for u in layout.places[1:]:
        if u.free_mib is None and u.need_mib > 0:
            layout.notes.append(
                f"{u.name}: free memory not known ({u.source}); its {u.need_mib:,.0f} MiB not checked"
            )
    layout.notes = list(dict.fromkeys(layout.notes))
    return layout


def _parts(u: Use) -> str:
    text = f"weights {u.weights:,.0f} + KV {u.kv:,.0f} + compute {u.compute:,.0f}"
    return text + (f" + draft {u.draft:,.0f}" if u.draft else "")


def problems(lane: str, layout: Layout) -> list[str]:
    """One line per place the lane cannot fit in; [] when it fits (or nothing known says not)."""
    if layout.total_only:
        cap = layout.capacity_mib
        if cap is None or layout.total_mib <= cap:
            return []
        return [
            f"lane {lane!r}: needs about {layout.total_mib:,.0f} MiB in all but RAM and its devices "
            f"have only {cap:,.0f} MiB free; lower ctx/slots, or pass --no-fit-check"
        ]
    out = []
    for u in layout.places:
        if u.free_mib is None or u.need_mib <= u.free_mib:
            continue
        slots = f"{u.layers} of {layout.n_slots} layers"
        if u.name == HOST:
            out.append(
                f"lane {lane!r}: needs about {u.need_mib:,.0f} MiB of RAM ({_parts(u)}; {slots} on the "
                f"{u.label}) but only {u.free_mib:,.0f} MiB is available (MemAvailable); lower ctx/slots, "
                "quantise the KV cache, or pass --no-fit-check"
            )
        else:
            out.append(
                f"lane {lane!r}: {u.label} needs about {u.need_mib:,.0f} MiB ({_parts(u)}; {slots}) "
                f"but only {u.free_mib:,.0f} MiB is free ({u.source}); lower gpu_layers/ctx/slots, "
                "or pass --no-fit-check"
            )
    return out


def summary(layout: Layout) -> str:
    """One line: each place's estimated need against its free memory."""
    if layout.total_only:
        cap = f" of {layout.capacity_mib:,.0f} free" if layout.capacity_mib is not None else ""
        return f"fit check: {layout.total_mib:,.0f} MiB in all{cap}"
    parts = []
    for u in layout.places:
        free = f" of {u.free_mib:,.0f} free" if u.free_mib is not None else ""
        parts.append(f"{u.label} {u.need_mib:,.0f} MiB{free}, {u.layers} of {layout.n_slots} layers")
    return (
        "fit check: "
        + "; ".join(parts)
        + ("; --fit kept some layers on the host" if layout.fitted and layout.host.layers else "")
    )
