"""Trace one lane through a real `lanebench run`: every call into lanebench's source that is handed
the lane (its LaneSpec, or a plan/result/record holding it), in order, from the command to the
stored row. Prints the files visited and how often the walk came back to a file it had left.

    python3 bench/lane_walk.py run LANES.toml --n-in 16 --n-out 8 --reps 1 --warmup 0 \
        --aggregate 0 --remeasure-busy 0 --db /tmp/walk.sqlite

The walk ends when the store's ``lane_finished`` returns (so give it a database, not --no-db). A
step is a call, handed the lane, into a file other than the previous step's; a return is a step
into a file the walk had already visited (issue 19's measure of a lane's path).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lanebench

SRC = str(Path(lanebench.__file__).resolve().parent) + "/"


def holds_lane(value: object, lane: object, depth: int = 0) -> bool:
    if value is lane:
        return True
    if depth > 1:
        return False
    for attr in ("lane", "spec", "plan", "result"):
        inner = getattr(value, attr, None) if not isinstance(value, (str, bytes, int, float)) else None
        if inner is not None and holds_lane(inner, lane, depth + 1):
            return True
    if isinstance(value, (list, tuple)) and value and depth == 0:
        return any(holds_lane(v, lane, depth + 1) for v in value[:4])
    return False


def main() -> None:
    from lanebench.cli.main import main as cli
    from lanebench.config import lanes as lanes_mod

    state: dict[str, object] = {"lane": None}
    walk: list[tuple[str, str]] = []
    real = lanes_mod.LaneSpec.model_validate

    def profile(frame, event, arg):
        if event == "return" and state.get("stop") is frame:
            state["done"] = True
            return
        if event != "call" or state.get("done"):
            return
        if frame.f_code.co_flags & 0x2A0 and frame.f_lasti > 0:  # a generator/coroutine resumed
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
                walk.append((rel, code.co_name))
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
    returns = 0
    for rel, _fn in walk:
        if rel in seen:
            returns += 1
        seen.add(rel)
    for rel, fn in walk:
        print(f"{rel}:{fn}", file=sys.stderr)
    print(
        f"files visited: {len(seen)}; returns to a file already left: {returns}; steps: {len(walk)}",
        file=sys.stderr,
    )


main()
