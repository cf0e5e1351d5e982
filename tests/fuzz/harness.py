"""A small mutational fuzzer for the files lanebench reads.

A ``Target`` gives valid seed files and a function that does with one file what the CLI
does. ``fuzz`` mutates the seeds (``tests.fuzz.mutators``), runs every input in a forked
worker under ``RLIMIT_AS`` and a wall timeout, and classifies each outcome:

- ``ok``: accepted; ``clean``: a one-line ``LanebenchError`` (what the CLI prints);
- ``traceback``: any other exception (or an error message of several lines);
- ``hang``: no answer within the timeout; ``memory``: ``MemoryError``, or the worker died.

Workers run many inputs each (a fork per input would cost more than most inputs); a hung
or dead worker is replaced and the run goes on. Input ``i`` of a target is a pure function
of (seed, target, i), so any reproducer can be made again and runs are deterministic.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import resource
import select
import shutil
import signal
import tempfile
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lanebench.errors import LanebenchError
from tests.fuzz.gguf_codec import decode
from tests.fuzz.mutators import mutate

OUTCOMES = ("ok", "clean", "traceback", "hang", "memory")
BAD = ("traceback", "hang", "memory")
MEM_LIMIT = 3 << 29  # 1.5 GiB of address space per worker (more if the parent already maps more)
TIMEOUT_S = 10.0
TARGET_MODULES = ("tests.fuzz.targets_gguf", "tests.fuzz.targets_inputs")
REPO = Path(__file__).resolve().parents[2]
_OURS = ("/src/lanebench/", "/site-packages/lanebench/", "/tests/fuzz/targets")  # frames we own


@dataclass(frozen=True)
class Target:
    name: str  # e.g. "gguf-read", "lanes-file"
    seeds: Callable[[Path], list[bytes]]  # given a scratch dir, valid seed inputs (one file's bytes each)
    run: Callable[[Path], None]  # exercise one input file as the CLI would; LanebenchError to reject
    suffix: str = ""  # file suffix for the input file (".gguf", ".toml", ".json", ...)


@dataclass(slots=True)
class Failure:
    """One bad outcome: which input, what happened, where (its root-cause key)."""

    index: int
    outcome: str
    cause: str  # "TypeError at src/lanebench/gguf/check.py:170", "hang", "memory (...)"
    message: str
    reproducer: Path | None = None


@dataclass(slots=True)
class Result:
    """Counts per outcome for one target, and its failures."""

    target: str
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bad(self) -> int:
        return sum(self.counts[o] for o in BAD)

    def groups(self) -> dict[str, list[Failure]]:
        """Failures by root cause (exception type and the frame it came from), most first."""
        out: dict[str, list[Failure]] = {}
        for f in self.failures:
            out.setdefault(f.cause, []).append(f)
        return dict(sorted(out.items(), key=lambda kv: -len(kv[1])))


def all_targets() -> list[Target]:
    """Every target of ``tests.fuzz.targets_gguf`` and (if present) ``tests.fuzz.targets_inputs``."""
    targets: list[Target] = []
    for name in TARGET_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        targets += module.TARGETS
    return targets


def make_input(target: Target, seeds: list[bytes], seed: int, i: int, docs: list | None = None) -> bytes:
    """Input ``i`` of ``target`` for run seed ``seed`` (the same bytes every time)."""
    return mutate(random.Random(f"{seed}/{target.name}/{i}"), seeds, docs or [decode(s) for s in seeds])


# ---- the worker (a forked child) ---------------------------------------------------------


def _where(tb: traceback.StackSummary) -> tuple[str, str]:
    """(last frame, deepest frame inside lanebench or the fuzz targets) as path:line."""

    def rel(fr: traceback.FrameSummary) -> str:
        p = Path(fr.filename)
        return f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p.name}:{fr.lineno}"

    ours = [fr for fr in tb if any(part in fr.filename for part in _OURS)]
    return rel(tb[-1]), rel(ours[-1] if ours else tb[-1])


def classify(run: Callable[[Path], None], path: Path) -> tuple[str, str, str]:
    """(outcome, root cause, message) of running one input."""
    try:
        run(path)
        return "ok", "", ""
    except LanebenchError as exc:
        msg = str(exc)
        if msg.strip() and "\n" not in msg:
            return "clean", "", msg
        last, ours = _where(traceback.extract_tb(exc.__traceback__))
        return "traceback", f"{type(exc).__name__} with a message of several lines at {ours}", msg
    except MemoryError:
        return "memory", "MemoryError", ""
    except BaseException as exc:  # everything else is a bug the CLI would show as a traceback
        last, ours = _where(traceback.extract_tb(exc.__traceback__))
        cause = f"{type(exc).__name__} at {ours}" + (f" (raised at {last})" if last != ours else "")
        return "traceback", cause, f"{type(exc).__name__}: {exc}"[:500]


@dataclass(frozen=True, slots=True)
class _Run:
    """What every worker of one target's run shares."""

    target: Target
    seeds: list[bytes]
    seed: int
    work: Path  # scratch space, removed after the run
    limit: int  # RLIMIT_AS, bytes
    timeout: float  # seconds per input


def _worker(run: _Run, todo: list[int], wfd: int) -> None:
    """Run ``todo`` inputs one after another, one JSON line per result on ``wfd``; never returns."""
    code = 0
    target, seeds, seed = run.target, run.seeds, run.seed
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        resource.setrlimit(resource.RLIMIT_AS, (run.limit, run.limit))
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        docs = [decode(s) for s in seeds]
        scratch = Path(tempfile.mkdtemp(prefix="worker-", dir=run.work))
        for i in todo:
            path = scratch / f"input-{i}{target.suffix}"
            outcome, cause, msg = classify(
                lambda p, i=i: p.write_bytes(make_input(target, seeds, seed, i, docs)), path
            )
            if outcome == "ok":
                outcome, cause, msg = classify(target.run, path)
            else:
                cause = "fuzzer: " + cause
            line = json.dumps({"i": i, "o": outcome, "c": cause, "m": msg[:2000]}) + "\n"
            os.write(wfd, line.encode())
            if outcome == "memory":
                break  # a fresh worker for the rest
            _clear(scratch)
    except BaseException:
        code = 70
    os._exit(code)


def _clear(d: Path) -> None:
    for p in d.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _tmp_root() -> str | None:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def _limit(mem_limit: int) -> int:
    """The address-space limit for a worker: ``mem_limit``, or 1 GiB above what is mapped."""
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    return max(mem_limit, mapped + (1 << 30))


# ---- the supervisor --------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    todo: deque[int]
    pid: int = 0
    rfd: int = -1
    buf: bytes = b""
    deadline: float = 0.0


def _spawn(slot: _Slot, run: _Run) -> None:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _worker(run, list(slot.todo), wfd)
    os.close(wfd)
    slot.pid, slot.rfd, slot.buf, slot.deadline = pid, rfd, b"", time.monotonic() + run.timeout


def _reap(slot: _Slot, kill: bool) -> str:
    if kill:
        os.kill(slot.pid, signal.SIGKILL)
    _, status = os.waitpid(slot.pid, 0)
    os.close(slot.rfd)
    slot.rfd = -1
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}"


def run_inputs(run: _Run, indices: list[int], jobs: int) -> Iterator[tuple[int, str, str, str]]:
    """(index, outcome, cause, message) for every index, from ``jobs`` workers."""
    timeout = run.timeout
    slots = [_Slot(deque(indices[j::jobs])) for j in range(jobs)]
    for s in slots:
        if s.todo:
            _spawn(s, run)
    while any(s.rfd >= 0 for s in slots):
        live = [s for s in slots if s.rfd >= 0]
        wait = max(0.0, min(s.deadline for s in live) - time.monotonic())
        ready, _, _ = select.select([s.rfd for s in live], [], [], wait)
        for s in live:
            if s.rfd in ready:
                chunk = os.read(s.rfd, 1 << 16)
                s.buf += chunk
                while b"\n" in s.buf:
                    line, s.buf = s.buf.split(b"\n", 1)
                    r = json.loads(line)
                    assert s.todo.popleft() == r["i"]
                    s.deadline = time.monotonic() + timeout
                    yield r["i"], r["o"], r["c"], r["m"]
                if chunk:
                    continue
                how = _reap(s, kill=False)  # the worker ended
                if s.todo and how != "exit 0":
                    yield s.todo.popleft(), "memory", f"memory (worker {how})", ""
            elif time.monotonic() >= s.deadline:
                _reap(s, kill=True)
                yield s.todo.popleft(), "hang", "hang", f"no result within {timeout:.0f} s"
            else:
                continue
            if s.todo:
                _spawn(s, run)


def fuzz(
    target: Target,
    n: int,
    seed: int = 0,
    out_dir: Path | None = None,
    jobs: int = 1,
    timeout: float = TIMEOUT_S,
    mem_limit: int = MEM_LIMIT,
) -> Result:
    """Run ``n`` mutated inputs of ``target``; save reproducers of bad ones under ``out_dir``."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lanebench-fuzz-", dir=_tmp_root()) as tmp:
        (Path(tmp) / "seeds").mkdir()
        seeds = target.seeds(Path(tmp) / "seeds")
        if not seeds:
            raise ValueError(f"target {target.name}: no seeds")
        result = Result(target.name)
        run = _Run(target, seeds, seed, Path(tmp), _limit(mem_limit), timeout)
        for i, outcome, cause, msg in run_inputs(run, list(range(n)), jobs):
            result.counts[outcome] += 1
            if outcome in BAD:
                f = Failure(i, outcome, cause, msg)
                if out_dir is not None:
                    f.reproducer = _save(out_dir, target, f, make_input(target, seeds, seed, i))
                result.failures.append(f)
    result.seconds = time.monotonic() - start
    return result


def _save(out_dir: Path, target: Target, f: Failure, data: bytes) -> Path:
    d = out_dir / target.name
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{f.outcome}-{f.index:06d}{target.suffix}"
    path.write_bytes(data)
    path.with_name(path.name + ".txt").write_text(f"{f.cause}\n{f.message}\n", encoding="utf-8")
    return path


def summary(results: list[Result], per_cause: int = 3) -> str:
    """Plain-text root-cause groups of every bad outcome (for a test's failure message)."""
    lines = []
    for r in results:
        for cause, fs in r.groups().items():
            lines.append(f"{r.target}: {len(fs)} x {cause}")
            lines += [f"    input {f.index}: {f.message[:200]}" for f in fs[:per_cause]]
    return "\n".join(lines)
