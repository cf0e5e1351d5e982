"""Trace one lane through a real `lanebench run`: every call into lanebench's source that is handed
the lane (its LaneSpec, or a plan/result/record holding it), in order, from the command to the
stored row. Prints the files visited and how often the walk came back to a file it had left.

    python3 bench/lane_walk.py run LANES.toml --n-in 16 --n-out 8 --reps 1 --warmup 0 \
        --aggregate 0 --remeasure-busy 0 --db /tmp/walk.sqlite

The walk ends when the store's ``lane_finished`` returns (so give it a database, not --no-db). A
step is a call, handed the lane, into a file other than the previous step's. A return is a step
into a file the walk had already left, made by code of another file: control handed back into it
(issue 19's measure of a lane's path). A file's own code calling one of its functions again, after
a call it made elsewhere came back, is no return; the last line also counts those ("strict").
"Handed the lane": the LaneSpec is an argument, or is reachable from one within three steps
(attributes of lanebench's own objects, items of lists, tuples, sets and dict values). A
generator's or coroutine's first run is a call; so is a generator resumed (the end of a ``with``
block hands control back into its context manager); a coroutine the event loop resumes after its
own await is not.
"""

from __future__ import annotations

import dis
import sys
from functools import cache
from pathlib import Path
from typing import Any

import lanebench

SRC = str(Path(lanebench.__file__).resolve().parent) + "/"


def _parts(value: object) -> list[object]:
    """What a value holds one step in: its attributes (dataclass, slots, pydantic, plain) or
    its first items (list, tuple, set, dict values)."""
    if isinstance(value, (str, bytes, int, float, bool, type(None), Path)):
        return []
    if isinstance(value, dict):
        return list(value.values())[:8]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)[:8]
    if not type(value).__module__.startswith("lanebench"):
        return []  # the lane is held by lanebench's own objects; others' attributes can run code
    out: list[object] = []
    d = getattr(value, "__dict__", None)
    if isinstance(d, dict):
        out += list(d.values())
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            out.append(getattr(value, name, None))
    return out


def holds_lane(value: object, lane: object, depth: int = 0) -> bool:
    """Whether ``lane`` is ``value`` or reachable from it within three steps (an attribute of an
    attribute, an item of a list held by an attribute, ...)."""
    if value is lane:
        return True
    if depth >= 3:
        return False
    return any(holds_lane(v, lane, depth + 1) for v in _parts(value))


GENERATOR, COROUTINE, ASYNC_GENERATOR = 0x20, 0x80, 0x200


@cache
def first_offset(code: Any) -> int:
    """Where a frame of ``code`` starts running: its first RESUME (Python 3.11+ puts
    RETURN_GENERATOR and POP_TOP before it in a generator or coroutine), else 0."""
    return next((i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"), 0)


def resumed_by_loop(frame: Any) -> bool:
    """A coroutine the event loop resumes after one of its own awaits: it goes on with its own
    work, nobody hands it control. A generator resumed (``next``, a ``with`` block's end) is
    handed control by the code that resumes it, and counts as a call."""
    return bool(frame.f_code.co_flags & COROUTINE) and frame.f_lasti != first_offset(frame.f_code)


def caller_of(frame: Any) -> str:
    """The file of the nearest lanebench code below ``frame`` on the stack ("" for none)."""
    back = frame.f_back
    while back is not None and not back.f_code.co_filename.startswith(SRC):
        back = back.f_back
    return back.f_code.co_filename[len(SRC) :] if back is not None else ""


def main() -> None:
    from lanebench.cli.main import main as cli
    from lanebench.config import lanes as lanes_mod

    state: dict[str, object] = {"lane": None}
    walk: list[tuple[str, str, str]] = []  # (file, function, the file of the lanebench code that called it)
    real = lanes_mod.LaneSpec.model_validate

    def profile(frame, event, arg):
        if event == "return" and state.get("stop") is frame:
            state["done"] = True
            return
        if event != "call" or state.get("done"):
            return
        if resumed_by_loop(frame):
            return
        f = frame.f_code.co_filename
        if not f.startswith(SRC):
            return
        lane = state["lane"]
        if lane is None:
            return
        code = frame.f_code
        args = [frame.f_locals.get(n) for n in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]]
        if any(holds_lane(a, lane) for a in args):
            rel = f[len(SRC) :]
            if not walk or walk[-1][0] != rel:
                walk.append((rel, code.co_name, caller_of(frame)))
            if rel == "store/sink.py" and code.co_name == "lane_finished":
                state["stop"] = frame  # the stored row: the walk ends when this call returns

    def capture(cls, obj, *a, **k):
        out = real(obj, *a, **k)
        if state["lane"] is None and getattr(out, "name", None):
            state["lane"] = out
        return out

    lanes_mod.LaneSpec.model_validate = classmethod(capture)  # type: ignore[method-assign]
    sys.setprofile(profile)
    try:
        sys.argv = ["lanebench", *sys.argv[1:]]
        cli()
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
    seen: set[str] = set()
    returns = strict = 0
    for rel, fn, caller in walk:
        again = rel in seen
        handed = again and caller != rel  # control handed back into the file from another one
        strict += again
        returns += handed
        mark = "  <- back" if handed else ("  (its own code calling it)" if again else "")
        print(f"{rel}:{fn}{mark}", file=sys.stderr)
        seen.add(rel)
    print(
        f"files visited: {len(seen)}; returns to a file already left: {returns}; steps: {len(walk)} "
        f"(steps into a file visited before, its own calls included: {strict})",
        file=sys.stderr,
    )


main()
