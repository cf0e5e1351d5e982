"""The pure parts of ``bench/crosscheck.py``: command lines, parsing, statistics, rows, tables.

No I/O here: ``crosscheck.py`` runs lanebench, llama-bench and its own llama-server and passes
what they printed to these functions. Rates are tokens per second, times seconds unless a name
says ``_ms``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

CTX_PAD = 256  # tokens of context beyond the job, as lanebench's own sizing leaves room


@dataclass(frozen=True, slots=True)
class Settings:
    """The one lane both sides run, and the job (tokens; ``depths`` in tokens of context)."""

    model: str
    server_bin: str | None = None
    bench_bin: str | None = None
    n_in: int = 256
    n_out: int = 64
    depths: tuple[int, ...] = (0, 4096)
    reps: int = 3
    warmup: int = 1
    kv: str = "f16"
    flash_attn: str = "auto"
    threads: int | None = None
    ngl: int | None = None
    extra: tuple[str, ...] = ()  # llama-server arguments, lane field extra_args
    bench_extra: tuple[str, ...] = ()  # llama-bench arguments of the script's own kernel run
    slots: int = 1


@dataclass(frozen=True, slots=True)
class Point:
    """One operating point. lanebench's standard job is used (not the envelope's `--depth`, which
    came after), so depth
    ``d`` is reached through the prompt: one fresh prompt of ``d + n_in`` tokens."""

    depth: int
    n_in: int  # the job's prompt: depth + the settings' n_in
    n_out: int

    @property
    def ctx(self) -> int:
        """Context for one slot holding the whole job, rounded up to 256 tokens."""
        return -(-(self.n_in + self.n_out + CTX_PAD) // 256) * 256

    def meaning(self) -> str:
        text = (
            f"depth {self.depth}: one fresh prompt of {self.n_in} tokens (cache_prompt false), then "
            f"{self.n_out} generated; decode runs after {self.n_in} tokens of context "
            f"(llama-bench tg{self.n_out} @ d{self.n_in}); prefill is all {self.n_in} tokens from an empty "
            f"context (pp{self.n_in} @ d0)"
        )
        return text + (f", not {self.n_in - self.depth} new tokens after {self.depth}" if self.depth else "")


def points(s: Settings) -> list[Point]:
    return [Point(d, d + s.n_in, s.n_out) for d in s.depths]


def lanes_toml(s: Settings, p: Point) -> str:
    """The lanes file lanebench runs: one lane with the settings' flags and an explicit ctx."""
    lines = [
        "[[lane]]",
        'name = "crosscheck"',
        f"model = {json.dumps(s.model)}",
        f"slots = {s.slots}",
        f"ctx = {p.ctx * s.slots}",
        f"kv = {json.dumps(s.kv)}",
        f"flash_attn = {json.dumps(s.flash_attn)}",
    ]
    if s.threads is not None:
        lines.append(f"threads = {s.threads}")
    if s.ngl is not None:
        lines.append(f"gpu_layers = {s.ngl}")
    if s.extra:
        lines.append(f"extra_args = {json.dumps(list(s.extra))}")
    return "\n".join(lines) + "\n"


def lanebench_argv(
    python: str, lanes: str, out_json: str, out_dir: str, s: Settings, p: Point, attribute: bool
) -> list[str]:
    """``lanebench run`` for one point: its kernel view (``--baseline``), no N-slot aggregate,
    no results database; with ``attribute`` its attribution experiment at ``reps`` requests."""
    argv = [python, "-m", "lanebench", "run", lanes, "--n-in", str(p.n_in), "--n-out", str(p.n_out)]
    argv += ["--reps", str(s.reps), "--warmup", str(s.warmup), "--aggregate", "0", "--baseline"]
    argv += ["--json", out_json, "--no-db", "--out-dir", out_dir]
    if s.server_bin:
        argv += ["--server-bin", s.server_bin]
    if attribute:
        argv += ["--attribute", "--attribute-reps", str(s.reps)]
    return argv


def _lane_flags(s: Settings) -> list[str]:
    args = ["-ctk", s.kv, "-ctv", s.kv, "-fa", s.flash_attn]
    if s.threads is not None:
        args += ["-t", str(s.threads)]
    if s.ngl is not None:
        args += ["-ngl", str(s.ngl)]
    return args


def server_argv(server_bin: str, s: Settings, p: Point, port: int, change: Sequence[str] = ()) -> list[str]:
    """The script's own llama-server: the lane's flags as a user would type them, on 127.0.0.1,
    with ``change`` (an attribution switch) last, so it is the server's last word."""
    argv = [server_bin, "-m", s.model, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-c", str(p.ctx * s.slots), "-np", str(s.slots), *_lane_flags(s), *s.extra]
    return argv + list(change)


def mirrored_argv(lanebench_argv: Sequence[str], port: int, change: Sequence[str] = ()) -> list[str]:
    """lanebench's own server argv with the port replaced (``--mirror-argv``)."""
    argv = list(lanebench_argv)
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(port)
    return argv + list(change)


def argv_difference(mine: Sequence[str], theirs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(arguments only lanebench's server had, arguments only the script's had), the port and
    binary left out: what a reader must know when the two servers' figures differ."""

    def words(argv: Sequence[str]) -> list[str]:
        out, skip = [], False
        for a in argv[1:]:
            if skip:
                skip = False
                continue
            if a == "--port":
                skip = True
                continue
            out.append(a)
        return out

    a, b = words(theirs), words(mine)
    only_theirs = [w for w in a if w not in b]
    only_mine = [w for w in b if w not in a]
    return only_theirs, only_mine


def bench_argvs(bench_bin: str, s: Settings, p: Point) -> tuple[list[str], list[str]]:
    """(prefill, decode) llama-bench argvs: ``pp n_in @ d0`` and ``tg n_out @ d n_in``, the
    prefill and decode the server runs for this point."""
    tail = ["-r", str(s.reps), "-o", "json", *_lane_flags(s), *s.bench_extra]
    prefill = [bench_bin, "-m", s.model, "-p", str(p.n_in), "-n", "0", "-d", "0", *tail]
    decode = [bench_bin, "-m", s.model, "-p", "0", "-n", str(p.n_out), "-d", str(p.n_in), *tail]
    return prefill, decode


@dataclass(frozen=True, slots=True)
class Figure:
    """A rate or time with its spread: median (or llama-bench's mean), min, max, n samples."""

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def figure_of(values: Iterable[float | None]) -> Figure | None:
    """Median (min–max) of the values present; None when there are none."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return Figure(statistics.median(xs), min(xs), max(xs), len(xs))


def parse_bench(text: str, n_prompt: int, n_gen: int, depth: int) -> Figure:
    """llama-bench ``-o json``: the test with these sizes at this depth as (mean ``avg_ts``,
    min and max of ``samples_ts``); ``ValueError`` saying what is missing."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"llama-bench printed no JSON ({exc.msg})") from None
    if not isinstance(rows, list):
        raise ValueError("llama-bench JSON is not a list of tests")
    for row in rows:
        if not isinstance(row, dict):
            continue
        sizes = (int(row.get("n_prompt") or 0), int(row.get("n_gen") or 0), int(row.get("n_depth") or 0))
        if sizes == (n_prompt, n_gen, depth) and isinstance(row.get("avg_ts"), int | float):
            samples = [float(v) for v in row.get("samples_ts") or [] if isinstance(v, int | float)]
            avg = float(row["avg_ts"])
            return Figure(avg, min(samples, default=avg), max(samples, default=avg), len(samples) or 1)
    test = f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"
    raise ValueError(f"llama-bench printed no {test} @ d{depth} test")


@dataclass(slots=True)
class StreamResult:
    """One streamed ``/completion`` as the script's clock saw it (seconds from sending)."""

    ok: bool
    error: str = ""
    ttft_s: float | None = None
    decode_tps: float | None = None
    tokens: int = 0  # the server's running count (tokens_predicted) at the end
    listed_tokens: int = 0  # token ids the chunks carried (return_tokens)
    chunks: int = 0
    timings: dict[str, Any] = field(default_factory=dict)

    def prefill_tps(self, n_in: int) -> float | None:
        return n_in / self.ttft_s if self.ok and self.ttft_s else None

    def outside_ms(self) -> float | None:
        """Time to first token beyond the engine's prompt timer (ms)."""
        if not self.ok or not self.ttft_s or "prompt_ms" not in self.timings:
            return None
        return 1000 * self.ttft_s - float(self.timings["prompt_ms"])


def read_stream(events: Sequence[tuple[float, dict[str, Any]]]) -> StreamResult:
    """Figures from a stream's events (arrival time, parsed ``data:`` object).

    Tokens are the server's running count ``tokens_predicted`` (never chunks); the first token
    arrived with the first event whose count is at least 1; client decode is the tokens after
    the first over the time from it to the event that brought the last one."""
    out = StreamResult(ok=True)
    first: tuple[float, int] | None = None
    last_t, count = 0.0, 0
    for t, ev in events:
        if "error" in ev:
            return StreamResult(ok=False, error=json.dumps(ev["error"])[:200])
        if isinstance(ev.get("timings"), dict):
            out.timings = ev["timings"]
        listed = ev.get("tokens") or []
        out.listed_tokens += len(listed)
        n = int(ev.get("tokens_predicted") or 0)
        out.chunks += 1 if (listed or ev.get("content")) else 0
        if n > count:
            count, last_t = n, t
            if first is None:
                first = (t, n)
    out.tokens = count
    if first is None:
        return StreamResult(ok=False, error="the stream carried no token")
    out.ttft_s = first[0]
    if count > first[1] and last_t > first[0]:
        out.decode_tps = (count - first[1]) / (last_t - first[0])
    return out


def sse_events(lines: Iterable[tuple[float, bytes]]) -> list[tuple[float, dict[str, Any]]]:
    """``data: {...}`` lines as (time, object); other SSE lines are skipped."""
    out = []
    for t, raw in lines:
        line = raw.strip()
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload and payload != b"[DONE]":
                out.append((t, json.loads(payload)))
        elif line.startswith(b"error:"):
            out.append((t, {"error": line[6:].strip().decode(errors="replace")}))
    return out


def prompt_slice(ids: Sequence[int], k: int, n: int, stride: int = 997) -> list[int]:
    """Request ``k``'s prompt: ``n`` ids starting at ``k × stride``, wrapping round ``ids``."""
    if len(ids) < 1:
        raise ValueError("no token ids to build prompts from")
    start = (k * stride) % len(ids)
    return [ids[(start + i) % len(ids)] for i in range(n)]


def completion_body(prompt: Sequence[int], n_out: int) -> dict[str, Any]:
    """The job's request: exactly these token ids, ``n_out`` tokens, no prompt reuse, greedy."""
    return {
        "prompt": list(prompt),
        "n_predict": n_out,
        "ignore_eos": True,
        "cache_prompt": False,
        "temperature": 0.0,
        "seed": 42,
        "stream": True,
        "return_tokens": True,
    }


def change_of(control: Figure | None, variant: Figure | None, n_in: int) -> tuple[float, float] | None:
    """(change of the median rate in %, ms per request it saved: n_in/control − n_in/variant)."""
    if control is None or variant is None or control.value <= 0 or variant.value <= 0:
        return None
    return 100 * (variant.value / control.value - 1), 1000 * (n_in / control.value - n_in / variant.value)
