"""Where a lane's memory goes, place by place (pure): llama-server's own choice of devices, its
layer split and its ``--fit`` step, replayed on the GGUF estimate and each device's free memory.

What b11434 does (src/llama.cpp ``llama_prepare_model_devices``, src/llama-model.cpp
``load_tensors``, common/fit.cpp ``common_params_fit_impl``):
- devices: ``--device`` as given, else every RPC device, then every GPU; ``-sm none`` keeps only
  device ``main_gpu`` of that list; ``--device none`` offloads nothing;
- layers: the input layer (token embeddings) stays on the host; of the ``n_layer + 1`` slots
  (the repeating layers, then the output layer) the last ``-ngl`` go to the devices in device
  order, in proportion to ``-ts``, else to each device's free memory; a layer's KV lives with it
  (``-nkvo``: on the host); ``-ngl auto`` offers every slot;
- ``--fit on``, when ``-ngl`` is auto and nothing pins the placement (``-ts`` or ``-sm row`` over
  several devices, ``-sm tensor``, ``-ot``/``-cmoe``): if every device keeps its margin (``-fitt``)
  free with every slot offered, nothing changes; else the devices are filled back to front (the
  last one takes the output layer and the top layers) up to their free memory less the margin,
  the draft's share counted first, and the rest stays on the host. A MoE model's expert tensors
  go to the host first and come back as far as room remains (here: by the MiB, not by the tensor);
- the draft (or MTP head) takes ``-ngld`` of its slots (auto: all) on ``--spec-draft-device`` or
  the main model's devices, by the same split, and is never fitted.
A device whose memory is really another place's (a local RPC server on this machine's CPU or
GPU: ``Device.shares``) is charged to that place.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from lanebench.memory.estimate import ModelEstimate
from lanebench.memory.serverdefaults import ALL, AUTO

HOST = "host"


@dataclass(frozen=True, slots=True)
class Device:
    """A device the build can place layers on; MiB. ``free_mib`` None: unknown."""

    name: str
    free_mib: float | None
    source: str = "--list-devices"  # where the free figure comes from
    shares: str | None = None  # the place whose memory it is (``HOST`` or a local device)


@dataclass(frozen=True, slots=True)
class Machine:
    """Free memory: RAM (MemAvailable), the build's devices here (None: unknown) and the lane's
    RPC devices (RPC0, RPC1... in ``--rpc`` order)."""

    ram_mib: float | None
    local: tuple[Device, ...] | None
    rpc: tuple[Device, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    """The server's placement once the lane's settings and the build's defaults are combined."""

    gpu_layers: int = AUTO
    draft_gpu_layers: int = AUTO
    fit: bool = True
    margins_mib: tuple[float, ...] = (1024.0,)  # -fitt: one value is every device's
    margin_default_mib: float = 1024.0  # the build's, for devices a -fitt list does not reach
    split_mode: str = "layer"
    main_gpu: int = 0
    tensor_split: tuple[float, ...] | None = None
    devices: tuple[str, ...] | None = None
    draft_devices: tuple[str, ...] | None = None
    kv_offload: bool = True
    overrides: tuple[str, ...] = ()


@dataclass(slots=True)
class Use:
    """One place's share of the lane, MiB; ``layers``: the main model's slots there."""

    name: str
    free_mib: float | None
    source: str
    weights: float = 0.0
    kv: float = 0.0
    compute: float = 0.0
    draft: float = 0.0
    layers: int = 0
    holds: tuple[str, ...] = ()  # devices whose memory is this place's (local RPC servers)

    @property
    def label(self) -> str:
        return self.name + (f" (with {', '.join(self.holds)})" if self.holds else "")

    @property
    def need_mib(self) -> float:
        return self.weights + self.kv + self.compute + self.draft

    def add(self, other: Use) -> None:
        self.weights += other.weights
        self.kv += other.kv
        self.compute += other.compute
        self.draft += other.draft
        self.layers += other.layers
        self.holds += (other.name, *other.holds)


@dataclass(slots=True)
class Layout:
    """``places``: the host first, then each device in the model's order. ``total_only``: how
    the lane spreads is not known, so only its total can be checked (``capacity_mib``, None when
    that is unknown too). ``fitted``: --fit moved layers off the devices."""

    places: list[Use]
    n_slots: int = 0
    notes: list[str] = field(default_factory=list)
    total_only: bool = False
    total_mib: float = 0.0
    capacity_mib: float | None = None
    fitted: bool = False

    @property
    def host(self) -> Use:
        return self.places[0]


def model_devices(
    names: Sequence[str] | None, split_mode: str, main_gpu: int, m: Machine
) -> list[Device] | None:
    """The devices a model is loaded on; None when they are not known."""
    if names is not None and list(names) == ["none"]:
        return []
    if names:
        known = {d.name: d for d in (*m.rpc, *(m.local or ()))}
        devs = [known.get(n) or Device(n, None, "not listed here") for n in names]
    elif m.local is None:
        return None
    else:
        devs = [*m.rpc, *m.local]
    if split_mode == "none" and devs:
        return [devs[main_gpu]] if 0 <= main_gpu < len(devs) else None
    return devs


def split_points(devs: Sequence[Device], tensor_split: Sequence[float] | None) -> list[float] | None:
    """llama.cpp's cumulative split over ``devs`` (``-ts`` shares, else free memory); None when
    it depends on a free figure that is not known."""
    shares = list(tensor_split or ())[: len(devs)]
    if not any(shares):
        if len(devs) == 1:
            return [1.0]
        if any(d.free_mib is None for d in devs):
            return None
        shares = [max(d.free_mib or 0.0, 0.0) for d in devs]
    shares += [0.0] * (len(devs) - len(shares))
    total, cum = sum(shares) or 1.0, list[float]()
    for s in shares:
        cum.append((cum[-1] if cum else 0.0) + s / total)
    return cum


def assign(n_slots: int, n_off: int, cum: Sequence[float]) -> list[int]:
    """The owner of each slot: a device index, or -1 for the host (the first ``n_slots - n_off``)."""
    first = n_slots - n_off
    return [
        -1 if il < first else min(bisect.bisect_right(cum, (il - first) / n_off), len(cum) - 1)
        for il in range(n_slots)
    ]


def offloaded(gpu_layers: int, n_slots: int, n_devs: int) -> int:
    if n_devs == 0:
        return 0
    return n_slots if gpu_layers in (AUTO, ALL) or gpu_layers < 0 else min(gpu_layers, n_slots)


def charge(
    est: ModelEstimate,
    owners: Sequence[int],
    devs: Sequence[Use],
    host: Use,
    *,
    kv_offload: bool = True,
    draft: bool = False,
    experts_home: Sequence[bool] = (),
) -> None:
    """Add the model's share to each place for ``owners``; ``experts_home[i]``: layer i's expert
    tensors stay on the host whatever holds the layer."""
    n = len(est.layers)

    def put(u: Use, w: float = 0.0, kv: float = 0.0, c: float = 0.0) -> None:
        if draft:
            u.draft += w + kv + c
        else:
            u.weights, u.kv, u.compute = u.weights + w, u.kv + kv, u.compute + c

    put(host, w=est.input_mib, c=est.activations_mib + est.logits_mib)
    for il, owner in enumerate(owners):
        place = host if owner < 0 else devs[owner]
        if not draft:
            place.layers += 1
        if il == n:
            put(place, w=est.output_host_mib if owner < 0 else est.output_mib)
            continue
        layer = est.layers[il]
        put(place, w=layer.dense_mib)
        put(host if il < len(experts_home) and experts_home[il] else place, w=layer.experts_mib)
        put(place if kv_offload else host, kv=layer.kv_mib)
    for d in sorted({o for o in owners if o >= 0}):
        put(devs[d], c=est.activations_mib)
    for d in sorted({o for il, o in enumerate(owners) if il < n}):
        put(host if d < 0 else devs[d], c=est.attention_mib)


def _slot_mib(est: ModelEstimate, il: int, kv_offload: bool, dense_only: bool) -> float:
    if il == len(est.layers):
        return est.output_mib
    layer = est.layers[il]
    return (
        layer.dense_mib + (0.0 if dense_only else layer.experts_mib) + (layer.kv_mib if kv_offload else 0.0)
    )


def fill_back_to_front(
    est: ModelEstimate, caps: Sequence[float], kv_offload: bool, dense_only: bool
) -> list[int]:
    """--fit's fill: the last device first takes the top slots while they stay within its cap
    (its activations counted with its first slot), then the one before it; the rest stay home."""
    owners = [-1] * (len(est.layers) + 1)
    top = len(owners) - 1
    for d in reversed(range(len(caps))):
        used, started, attends = 0.0, False, False
        while top >= 0:
            cost = _slot_mib(est, top, kv_offload, dense_only) + (0.0 if started else est.activations_mib)
            layer = top < len(est.layers)
            cost += est.attention_mib if layer and not attends else 0.0
            if used + cost > caps[d]:
                break
            owners[top], used, started, top = d, used + cost, True, top - 1
            attends = attends or layer
    return owners


def needs(
    est: ModelEstimate, owners: Sequence[int], n_devs: int, kv_offload: bool, dense_only: bool = False
) -> list[float]:
    """Each device's need (MiB) for the main model with ``owners``."""
    devs = [Use(str(i), None, "") for i in range(n_devs)]
    home = [dense_only] * len(est.layers)
    charge(est, owners, devs, Use(HOST, None, ""), kv_offload=kv_offload, experts_home=home)
    return [u.need_mib for u in devs]


@dataclass(slots=True)
class MainPlacement:
    owners: list[int]
    experts_home: list[bool]
    absorbed: list[float]  # expert MiB each device takes back (MoE, --fit)
    fitted: bool = False


def margin_of(s: Settings, device: int) -> float:
    """The MiB --fit keeps free on device ``device`` (common/arg.cpp: one value is broadcast)."""
    if len(s.margins_mib) == 1:
        return s.margins_mib[0]
    return s.margins_mib[device] if device < len(s.margins_mib) else s.margin_default_mib


def fit_applies(s: Settings, n_devs: int) -> bool:
    """Whether b11434's --fit may change the placement (see the module's note)."""
    pinned = n_devs > 1 and (any(s.tensor_split or ()) or s.split_mode == "row")
    return s.fit and s.gpu_layers == AUTO and n_devs > 0 and s.split_mode != "tensor" and not pinned


def place_main(
    est: ModelEstimate, devs: Sequence[Device], cum: Sequence[float], s: Settings, extra: Sequence[float]
) -> MainPlacement:
    """Where the main model's slots go; ``extra``: the draft's need on each device (MiB)."""
    n_slots = len(est.layers) + 1
    owners = assign(n_slots, offloaded(s.gpu_layers, n_slots, len(devs)), cum)
    plain = MainPlacement(owners, [], [0.0] * len(devs))
    if not fit_applies(s, len(devs)) or any(d.free_mib is None for d in devs):
        return plain
    margin = [margin_of(s, i) for i in range(len(devs))]
    caps = [(d.free_mib or 0.0) - margin[i] - extra[i] for i, d in enumerate(devs)]
    if all(n <= c for n, c in zip(needs(est, owners, len(devs), s.kv_offload), caps, strict=True)):
        return plain
    moe = any(layer.experts_mib for layer in est.layers)
    owners = fill_back_to_front(est, caps, s.kv_offload, moe)
    home = [moe] * len(est.layers)
    absorbed = [0.0] * len(devs)
    if moe and min(owners) >= 0:
        left = sum(layer.experts_mib for layer in est.layers)
        for i, n in enumerate(needs(est, owners, len(devs), s.kv_offload, True)):
            absorbed[i] = min(max(caps[i] - n, 0.0), left)
            left -= absorbed[i]
    return MainPlacement(owners, home, absorbed, fitted=True)
