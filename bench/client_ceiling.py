"""How many streamed tokens per second lanebench's request path absorbs on one core (issue 12, item 5).

A fast local SSE server (``bench/sse_fixture.py``: llama-server's stream format, in its own
process pinned to its own core) streams tokens; one client process pinned to another core keeps
``--streams`` requests in flight and counts what it absorbs, for each mode:

- ``raw``: asyncio protocol, no aiohttp, only counts bytes: how fast the fixture goes (far above
  the others, so the fixture is not the bottleneck; its CPU share is shown too);
- ``bare``: an aiohttp loop reading the body line by line (``async for line in resp.content``),
  no parsing;
- ``lanebench``: ``lanebench.measure.client.stream_request`` with the llama.cpp engine's
  ``completion_body`` and ``LlamaReader`` (``stream_completion`` below), through a
  session opened as ``measure.py`` opens it (``TCPConnector(limit=0, force_close=True)``);
- ``scan``, ``scan-any``: the prototype in ``bench/client_proposed.py`` (json only where needed;
  ``scan-any`` also reads with ``iter_any()``), checked to give the same records first.

``--rate 0`` (unpaced): the fixture writes ``--burst`` events per write as fast as sockets take
them; the client then holds whole responses in aiohttp's buffer ahead of the parsing, so the
fixture sees fewer open connections than the client has requests in flight. ``--rate R``:
paced, one event per stream per step, R tokens/s over all streams, as an engine decoding all its
slots delivers them; "kept up" means >= 97% of R absorbed.

Every worker starts its next request as soon as one ends (the first one shorter, to stagger the
ends). After ``--warmup`` seconds a window of ``--seconds`` is measured; then no new request
starts and the running ones finish. tok/s counts each request's tokens pro rata of its time in
the window; "fixture tok/s" is what the fixture wrote in the window; tok/CPU-s divides by the
client's CPU time, which is what one whole core would give when other processes share it. In
flight = requests started and not finished, sampled every 100 ms in the window (a sample waits
for the event loop, so a busy loop gives fewer; the longest gap is shown); "fixture open" is the
fixture's own count of open connections over the same window. ``--parts`` first times each part
of the streaming loop per token without sockets.

    python bench/client_ceiling.py --streams 64,256 --tokens 512 --seconds 5 --rate 0,55000 --parts
    python bench/client_ceiling.py --streams 256 --modes lanebench --profile   # where time goes
    PYTHONPATH=/path/to/uvloop python bench/client_ceiling.py --loop uvloop      # uvloop, if installed
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import json
import multiprocessing as mp
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # measure this working tree's client.py

import aiohttp  # noqa: E402

import client_proposed  # noqa: E402
import sse_fixture  # noqa: E402
from lanebench.engines.base import Request  # noqa: E402
from lanebench.engines.llamacpp.engine import LlamaReader, completion_body  # noqa: E402
from lanebench.measure.client import parse_sse_line, stream_request  # noqa: E402
from lanebench.records.samples import RequestRecord, SampleKind  # noqa: E402

MODES = ("raw", "bare", "lanebench", "scan", "scan-any")
GOAL_TPS = 50_000
SPARK = " ▁▂▃▄▅▆▇█"


async def stream_completion(
    session: aiohttp.ClientSession,
    base: str,
    body: dict[str, Any],
    *,
    kind: SampleKind,
    rep: int,
    stream_index: int = 0,
) -> RequestRecord:
    """One llama-server ``/completion`` (``body`` from ``completion_body``) as lanebench sends it."""
    req = Request("/completion", body, len(body["prompt"]), int(body["n_predict"]))
    return await stream_request(
        session, base, req, LlamaReader(), kind=kind, rep=rep, stream_index=stream_index
    )


OneRequest = Callable[[aiohttp.ClientSession, str, dict[str, Any], int], Awaitable[tuple[int, str | None]]]


async def _one_lanebench(
    session: aiohttp.ClientSession, base: str, body: dict[str, Any], idx: int
) -> tuple[int, str | None]:
    rec = await stream_completion(session, base, body, kind="aggregate", rep=0, stream_index=idx)
    return rec.stream_tokens, rec.error


def _one_scan(iter_any: bool) -> OneRequest:
    """A request through the prototype, reading line by line or (``iter_any``) what arrived."""

    async def one(
        session: aiohttp.ClientSession, base: str, body: dict[str, Any], idx: int
    ) -> tuple[int, str | None]:
        rec = await client_proposed.stream_completion_proposed(
            session, base, body, kind="aggregate", rep=0, stream_index=idx, iter_any=iter_any
        )
        return rec.stream_tokens, rec.error

    return one


async def _one_bare(
    session: aiohttp.ClientSession, base: str, body: dict[str, Any], idx: int
) -> tuple[int, str | None]:
    async with session.post(f"{base}/completion", json=body) as resp:
        lines = 0
        async for _line in resp.content:
            lines += 1
    # every event is "data: {...}\n" then "\n"; the last event is the final one, not a token
    return lines // 2 - 1, None if resp.status == 200 else f"HTTP {resp.status}"


class _RawStream(asyncio.Protocol):
    """One request on a bare socket: send it, count bytes until the chunked terminator."""

    def __init__(self, request: bytes, done: asyncio.Future[int]) -> None:
        self.request = request
        self.done = done
        self.nbytes = 0
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.nbytes += len(data)
        self.tail = (self.tail + data)[-5:]
        if self.tail == b"0\r\n\r\n" and not self.done.done():
            self.done.set_result(self.nbytes)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed before the end of the stream"))


def _raw_request(host: str, port: int, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (
        b"POST /completion HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (host.encode(), port, len(payload), payload)
    )


async def _one_raw(
    session: aiohttp.ClientSession, base: str, body: dict[str, Any], idx: int
) -> tuple[int, str | None]:
    host, port = base.rsplit("/", 1)[1].split(":")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    request = _raw_request(host, int(port), body)
    try:
        await loop.create_connection(lambda: _RawStream(request, done), host, int(port))
        await done
    except OSError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    return int(body["n_predict"]), None


ONE: dict[str, OneRequest] = {
    "raw": _one_raw,
    "bare": _one_bare,
    "lanebench": _one_lanebench,
    "scan": _one_scan(iter_any=False),
    "scan-any": _one_scan(iter_any=True),
}


def _runq_wait_s() -> float:
    """Seconds this process has waited, runnable, for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def _get_stats(session: aiohttp.ClientSession, base: str, reset: bool) -> dict[str, Any]:
    async with session.get(f"{base}/stats" + ("?reset" if reset else "")) as resp:
        return json.loads(await resp.read())


async def _phase(mode: str, base: str, streams: int, args: argparse.Namespace) -> dict[str, Any]:
    """Keep ``streams`` requests of ``mode`` in flight; measure the window; return the figures."""
    one = ONE[mode]
    prompt = [1000 + (7 * i) % 30000 for i in range(args.n_in)]
    inflight = 0
    stopping = False
    done: list[tuple[float, float, int, int, str | None]] = []  # start, end, asked, tokens, error
    samples: list[tuple[float, int]] = []

    async def worker(idx: int) -> None:
        nonlocal inflight
        seed = idx
        # a shorter first request per worker staggers the ends, so streams do not restart in waves
        n_out = max(1, args.tokens * (idx + 1) // streams)
        while not stopping:
            body = completion_body(prompt, n_out, seed)
            inflight += 1
            t0 = time.perf_counter()
            try:
                tokens, error = await one(session, base, body, idx)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                tokens, error = 0, f"{type(exc).__name__}: {exc}"
            t1 = time.perf_counter()
            inflight -= 1
            done.append((t0, t1, n_out, tokens, error))
            seed += streams
            n_out = args.tokens

    async def sampler() -> None:
        while True:
            samples.append((time.perf_counter(), inflight))
            await asyncio.sleep(0.1)

    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # as measure.py opens it
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(worker(i)) for i in range(streams)]
        sampling = asyncio.create_task(sampler())
        await asyncio.sleep(args.warmup)
        s0 = await _get_stats(session, base, reset=True)
        w0, c0, m0, q0 = time.perf_counter(), time.process_time(), time.monotonic(), _runq_wait_s()
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        await asyncio.sleep(args.seconds)
        if prof:
            prof.disable()
        w1, c1, m1, q1 = time.perf_counter(), time.process_time(), time.monotonic(), _runq_wait_s()
        s1 = await _get_stats(session, base, reset=False)
        stopping = True
        _, pending = await asyncio.wait(tasks, timeout=max(30.0, 4 * args.seconds))
        for t in pending:
            t.cancel()
        sampling.cancel()
    window = w1 - w0
    tokens = 0.0
    n_done = 0.0
    errors = [e for *_, e in done if e]
    short = 0
    for t0, t1, asked, n, err in done:
        overlap = min(t1, w1) - max(t0, w0)
        if overlap <= 0:
            continue
        if not err and n != asked:
            short += 1
        share = overlap / (t1 - t0) if t1 > t0 else 1.0
        tokens += n * share
        n_done += share
    in_window = [(t, n) for t, n in samples if w0 <= t <= w1]
    server_samples = [(o, s) for t, o, s in s1["samples"] if m0 <= t <= m1]
    prof_text = None
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.profile_top)
        prof_text = out.getvalue()
    return {
        "mode": mode,
        "streams": streams,
        "window_s": window,
        "tps": tokens / window,
        "server_tps": (s1["events"] - s0["events"]) / (s1["t"] - s0["t"]),
        "rps": n_done / window,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "short": short,
        "client_cpu": (c1 - c0) / window,
        "client_runq": (q1 - q0) / window,
        "server_cpu": (s1["cpu_s"] - s0["cpu_s"]) / (s1["t"] - s0["t"]),
        "inflight": [n for _, n in in_window],
        "sample_gap_s": max((b[0] - a[0] for a, b in itertools.pairwise(in_window)), default=0.0),
        "server_open": [o for o, _ in server_samples],
        "profile": prof_text,
    }


def _run_loop(args: argparse.Namespace, main: Any) -> Any:
    if args.loop == "uvloop":
        import uvloop  # optional, not a lanebench dependency: measured only when asked

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def _client_process(mode: str, base: str, streams: int, args: argparse.Namespace, conn: Any) -> None:
    pinned = sse_fixture.pin(args.client_core)
    try:
        res = _run_loop(args, _phase(mode, base, streams, args))
        res["pinned"] = pinned
        conn.send(res)
    except Exception as exc:
        conn.send({"mode": mode, "streams": streams, "crash": f"{type(exc).__name__}: {exc}"})
        raise


def _run_phase(ctx: Any, mode: str, base: str, streams: int, args: argparse.Namespace) -> dict[str, Any]:
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_client_process, args=(mode, base, streams, args, child), daemon=True)
    proc.start()
    child.close()
    try:
        res = parent.recv()
    except EOFError:
        res = {"mode": mode, "streams": streams, "crash": f"client process exited ({proc.exitcode})"}
    proc.join(10)
    return res


def _spark(values: list[int], top: int, width: int = 50) -> str:
    if not values:
        return ""
    step = max(1, -(-len(values) // width))
    buckets = [min(values[i : i + step]) for i in range(0, len(values), step)]  # dips stay visible
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in buckets)


def _mmm(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{min(values)}/{statistics.median(values):g}/{max(values)}"


def _report(results: list[dict[str, Any]], streams: int, rate: float) -> None:
    print(f"\n== {streams} concurrent streams ==")
    print(
        f"{'mode':<10} {'tok/s':>9} {'fixture tok/s':>13} {'tok/CPU-s':>9} {'req/s':>6} {'errors':>6} "
        f"{'client CPU':>10} {'CPU wait':>8} {'fixture CPU':>11} {'in flight min/med/max':>21} "
        f"{'fixture open':>12}"
    )
    by_mode = {}
    for r in results:
        if "crash" in r:
            print(f"{r['mode']:<10} crashed: {r['crash']}")
            continue
        by_mode[r["mode"]] = r
        errs = f"{r['errors']}" + (f"+{r['short']}short" if r["short"] else "")
        per_cpu = r["tps"] / r["client_cpu"] if r["client_cpu"] > 0 else 0.0
        print(
            f"{r['mode']:<10} {r['tps']:>9,.0f} {r['server_tps']:>13,.0f} {per_cpu:>9,.0f} {r['rps']:>6.0f} "
            f"{errs:>6} {r['client_cpu']:>10.0%} {r['client_runq']:>8.0%} {r['server_cpu']:>11.0%} "
            f"{_mmm(r['inflight']):>21} "
            f"{_mmm(r['server_open']):>12}"
        )
    for r in by_mode.values():
        print(
            f"  in flight, {r['mode']:<9} |{_spark(r['inflight'], streams)}| {len(r['inflight'])} samples, "
            f"longest gap {r['sample_gap_s'] * 1000:.0f} ms"
        )
        if r["first_error"]:
            print(f"  first error ({r['mode']}): {r['first_error']}")
    bare = by_mode.get("bare")
    for mode in ("lanebench", "scan", "scan-any"):
        if mode in by_mode and bare:
            r = by_mode[mode]
            print(
                f"  {mode} / bare = {r['tps'] / bare['tps']:.2f} (per client CPU-second: "
                f"{(r['tps'] / r['client_cpu']) / (bare['tps'] / bare['client_cpu']):.2f})"
            )
    for mode in ("lanebench", "scan-any"):
        if mode not in by_mode:
            continue
        r = by_mode[mode]
        med = statistics.median(r["inflight"] or [0])
        ok = med >= 0.95 * streams and not r["errors"] and not r["short"]
        if rate:
            kept = ok and r["tps"] >= 0.97 * rate
            verdict = f"kept up with {rate:,.0f} tok/s: {'yes' if kept else 'NO'}"
        else:
            verdict = f"goal >= {GOAL_TPS:,} tok/s: {'MET' if ok and r['tps'] >= GOAL_TPS else 'NOT MET'}"
        print(
            f"  {mode} with {streams} in flight, {verdict} ({r['tps']:,.0f} tok/s, median in flight "
            f"{med:g}, client CPU {r['client_cpu']:.0%})"
        )
    for r in by_mode.values():
        if r["profile"]:
            print(f"\n-- cProfile of {r['mode']} at {streams} streams (window only, by own time) --")
            print(r["profile"].rstrip())


async def _agreement(base: str, n_out: int) -> str:
    """The prototype's record against stream_completion's, same stream; and the scan's self-check."""
    problems = client_proposed.self_check()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        body = completion_body([1, 2, 3] * 50, n_out, 7)
        want = await stream_completion(session, base, body, kind="single", rep=0)
        for any_ in (False, True):
            got = await client_proposed.stream_completion_proposed(
                session, base, body, kind="single", rep=0, iter_any=any_
            )
            for field in ("ok", "error", "stream_tokens", "content_sha", "timings"):
                if getattr(got, field) != getattr(want, field):
                    problems.append(f"iter_any={any_}: {field}: {getattr(got, field)!r}")
    if problems:
        return "DISAGREE: " + "; ".join(problems)
    return (
        f"same tokens ({want.stream_tokens}), content_sha ({want.content_sha[:12]}...), timings and "
        "status as stream_completion; scan self-check on 11 crafted lines agrees with json.loads"
    )


async def _parts(n_tokens: int, reps: int = 30) -> list[tuple[str, float]]:
    """ns per token of each part of the streaming loop, on one stream's bytes, without sockets.

    The chunks are fed to aiohttp's own ``StreamReader`` (one ``feed_data`` per HTTP chunk, as its
    HTTP parser does), then read as ``stream_request`` reads them today or as proposed. The parse
    steps are client.py's own (``parse_sse_line`` and ``LlamaReader``)."""
    import hashlib

    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.streams import StreamReader

    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    events = [f.split(b"\r\n", 1)[1][:-2] for f in sse_fixture.stream_frames(n_tokens, 1150)[:-1]]
    lines = b"".join(events).splitlines(keepends=True)
    chunks = [c for line in lines if (c := parse_sse_line(line))]

    def fed() -> StreamReader:
        r = StreamReader(protocol, 2**16, loop=loop)
        for e in events:
            r.begin_http_chunk_receiving()
            r.feed_data(e)
            r.end_http_chunk_receiving()
        r.feed_eof()
        return r

    async def feed() -> None:
        fed()

    async def readline() -> None:
        async for _ in fed():
            pass

    async def iter_any() -> None:
        async for data in fed().iter_any():
            data.split(b"\n")

    async def parse() -> None:
        for line in lines:
            parse_sse_line(line)

    async def reader_feed() -> None:
        r = LlamaReader()
        for c in chunks:
            r.feed(c)

    async def stamps_digest() -> None:
        d = hashlib.sha256()
        for c in chunks:
            time.perf_counter()
            d.update(str(c.get("content", "")).encode())

    async def today() -> None:
        r, d, n = LlamaReader(), hashlib.sha256(), 0
        async for raw in fed():
            chunk = parse_sse_line(raw)
            if chunk is None:
                continue
            k, text = r.feed(chunk)
            if k:
                time.perf_counter()
                n += k
                d.update(text.encode())

    async def proposed() -> None:
        r, content, rest, n = LlamaReader(), client_proposed.ContentHash(), b"", 0
        async for data in fed().iter_any():
            time.perf_counter()
            lines = (rest + data if rest else data).split(b"\n")
            rest = lines.pop()
            n += client_proposed.take_lines(lines, r, content)
        content.hexdigest()

    parts = [
        ("aiohttp feed_data per HTTP chunk (data_received does it)", feed),
        ("read: async for line in resp.content (2 lines/token)", readline),
        ("read: resp.content.iter_any() + split(b'\\n')", iter_any),
        ("parse: parse_sse_line per line (json.loads per event)", parse),
        ("reader.feed (LlamaReader + chunk_tokens)", reader_feed),
        ("perf_counter + digest.update(text.encode()) per event", stamps_digest),
        ("= today's loop, feed_data included", today),
        ("= proposed loop (iter_any, scan, one hash), feed_data incl.", proposed),
    ]
    out = []
    for name, fn in parts:
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            await fn()
            best = min(best, time.perf_counter() - t0)
        if fn in (readline, iter_any):
            best -= out[0][1] * n_tokens / 1e9  # the reads alone, without feeding the reader
        out.append((name, best / n_tokens * 1e9))
    return out


def _parts_process(args: argparse.Namespace, conn: Any) -> None:
    pinned = sse_fixture.pin(args.client_core)
    conn.send((pinned, asyncio.run(_parts(args.tokens))))


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", default="64,256", help="comma-separated concurrencies (default 64,256)")
    p.add_argument("--tokens", type=int, default=512, help="n_predict of every request (default 512)")
    p.add_argument("--n-in", type=int, default=1150, help="prompt token ids per request (default 1150)")
    p.add_argument("--seconds", type=float, default=5.0, help="measured window (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before the window (default 1)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument(
        "--rate",
        default="0",
        help="comma-separated fixture rates in tokens/s over all streams; 0 = unpaced (default 0)",
    )
    p.add_argument("--burst", type=int, default=16, help="SSE events per write() when unpaced (16)")
    p.add_argument("--client-core", type=int, default=0, help="core for the client process (0)")
    p.add_argument("--server-core", type=int, default=1, help="core for the fixture process (1)")
    p.add_argument("--profile", action="store_true", help="cProfile the client in the window")
    p.add_argument("--profile-top", type=int, default=25, help="functions listed by --profile")
    p.add_argument("--parts", action="store_true", help="first, ns per token of each part of the loop")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="client event loop")
    args = p.parse_args(argv)
    args.streams_list = [int(s) for s in args.streams.split(",") if s.strip()]
    args.modes_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.rates = [float(r) for r in args.rate.split(",") if r.strip()]
    bad = [m for m in args.modes_list if m not in ONE]
    if bad:
        p.error(f"unknown mode(s) {', '.join(bad)}; known: {', '.join(ONE)}")
    return args


def _cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _fixture(ctx: Any, args: argparse.Namespace, rate: float) -> tuple[Any, str, str]:
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=sse_fixture.run_in_process,
        args=("127.0.0.1", 0, args.burst, rate, args.server_core, child),
        daemon=True,
    )
    proc.start()
    child.close()
    port, pinned = parent.recv()
    return proc, f"http://127.0.0.1:{port}", pinned


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    ctx = mp.get_context("fork")
    print(
        f"client_ceiling: Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"{os.cpu_count()} cores ({_cpu_name()})"
    )
    print(
        f"requests of {args.tokens} tokens, prompt {args.n_in} ids; window {args.seconds:g} s "
        f"after {args.warmup:g} s warm-up; client pinned to core {args.client_core}, {args.loop} loop"
    )
    if args.parts:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_parts_process, args=(args, child), daemon=True)
        proc.start()
        pinned, parts = parent.recv()
        proc.join(10)
        print(f"\nCPU per token of the loop's parts, no sockets, {args.tokens}-token stream, on {pinned}:")
        for name, ns in parts:
            print(f"  {name:<61} {ns:>6,.0f} ns/token")
    for k, rate in enumerate(args.rates):
        server, base, pinned = _fixture(ctx, args, rate)
        try:
            pace = (
                f"paced at {rate:,.0f} tok/s over all streams, one event per stream per step"
                if rate
                else f"unpaced, {args.burst} events per write"
            )
            print(f"\n#### fixture on {pinned}, {pace}")
            if k == 0 and any(m.startswith("scan") for m in args.modes_list):
                agreement = asyncio.run(_agreement(base, 300))
                print(f"prototype (bench/client_proposed.py) vs stream_completion: {agreement}")
            for streams in args.streams_list:
                results = [_run_phase(ctx, mode, base, streams, args) for mode in args.modes_list]
                _report(results, streams, rate)
        finally:
            server.terminate()
            server.join(5)


if __name__ == "__main__":
    main()
