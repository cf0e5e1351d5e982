"""What a newcomer needs to know before ``lanebench run``: what the default engine checks of
itself (llama.cpp: the build, whether it runs here, its version, dialect and CPU features, the
build configuration setup chose, the model), and how busy the machine is."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lanebench.busy.cpu import describe
from lanebench.busy.meter import default_threads, machine_load
from lanebench.config.lanes import LaneSpec
from lanebench.engines.hooks import doctor_item as _item
from lanebench.engines.registry import get_engine

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
    """Checks with one line each (``items[i].ok`` False comes with a ``fix``): the default
    engine's own (``Engine.doctor``), then the machine's load, watched before the smoke test's
    server runs."""
    load, load_record = load_item()
    engine = get_engine(str(LaneSpec.model_fields["engine"].default))
    items, facts = engine.doctor(smoke)
    if load is not None:
        items.append(load)
    return {"items": items, **facts, "load": load_record}
