"""Each lanebench figure beside an independent measurement of the same thing, with the ratio.

For one lane (the real Gemma 3 270M by default) at each depth of ``--depths``:
  - kernel view: lanebench ``run --baseline`` against llama-bench run by this script (its own
    argv, ``-d``, ``-o json``);
  - engine and client views: lanebench's server and client against this script's own
    llama-server (same lane flags, 127.0.0.1) and its own clock (``http.client`` streaming
    ``/completion``, ``cache_prompt: false``, tokens from the server's running count) and that
    server's own ``timings``;
  - attribution: for each suspect ``run --attribute`` tested, this script's own A/B (its server
    restarted with the suspect switched off) in client prefill beside lanebench's difference.

lanebench's standard job (not the envelope's --depth, which came after this script): depth d is
reached through the
prompt (one fresh prompt of d + n_in tokens), and the header says so. A report, not a test:
no threshold fails it.

    python bench/crosscheck.py [--model GGUF] [--ngl N] [--extra '-ub 256'] [--n-in 256]
        [--n-out 64] [--depths 0,4096] [--reps 3] [--json out.json] [--format markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from crosscheck_core import (
    Figure,
    Point,
    Settings,
    StreamResult,
    argv_difference,
    bench_argvs,
    lanebench_argv,
    lanes_toml,
    mirrored_argv,
    parse_bench,
    points,
    server_argv,
)
from crosscheck_rows import (
    HEADERS,
    Effect,
    Row,
    Side,
    lanebench_side,
    markdown_table,
    own_figures,
    point_rows,
    request_notes,
    table_cells,
)
from crosscheck_server import CheckFailed, Requests, Server, corpus_ids, free_port, say


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"crosscheck: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _depths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,4096, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    ap = _Parser(
        description=(__doc__ or "").split("\n    python")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--model", type=Path, help="GGUF (default: lanebench's Gemma 3 270M)")
    ap.add_argument("--server-bin", type=Path, help="llama-server (default: the one lanebench finds)")
    ap.add_argument("--bench-bin", type=Path, help="llama-bench (default: beside llama-server)")
    ap.add_argument("--n-in", type=_positive, default=256, help="new prompt tokens per request (256)")
    ap.add_argument("--n-out", type=_positive, default=64, help="generated tokens per request (64)")
    ap.add_argument("--depths", type=_depths, default=(0, 4096), help="tokens of context (0,4096)")
    ap.add_argument("--reps", type=_positive, default=3, help="measured repetitions per side (3)")
    ap.add_argument("--ngl", type=int, help="GPU layers (-ngl), both sides")
    ap.add_argument("--threads", type=_positive, help="threads (-t), both sides")
    ap.add_argument("--kv", default="f16", help="K and V cache type (f16)")
    ap.add_argument("--fa", default="auto", choices=("on", "off", "auto"), help="flash attention (auto)")
    ap.add_argument(
        "--extra",
        default="",
        help="more llama-server arguments (the lane's extra_args), e.g. --extra='-ub 256'",
    )
    ap.add_argument(
        "--bench-extra",
        default="",
        help="more llama-bench arguments for the script's own run, e.g. --bench-extra='-ub 256'",
    )
    ap.add_argument(
        "--attribute",
        default="first",
        choices=("first", "all", "none"),
        help="at which depths to run lanebench --attribute and the script's A/B (first)",
    )
    ap.add_argument(
        "--mirror-argv",
        action="store_true",
        help="run the script's server with lanebench's exact argv (its --metrics -lv 4 too)",
    )
    ap.add_argument("--tolerance", type=float, default=10.0, help="%% within which two figures agree (10)")
    ap.add_argument("--format", choices=("rich", "markdown"), default="rich", help="table format (rich)")
    ap.add_argument("--json", type=Path, help="write everything, raw figures too, to this JSON file")
    ap.add_argument("--work-dir", type=Path, help="lanebench's JSON and server logs (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds for one run or request (1800)")
    return ap


class BadInput(CheckFailed):
    """A flag's value is not what it must be (exit 2)."""


def settings_from(args: argparse.Namespace) -> Settings:
    """The validated settings; ``BadInput`` naming the flag otherwise."""
    if args.model is None:
        from lanebench.config.models import default_model_path

        args.model = default_model_path()
    model = Path(args.model).expanduser()
    if not model.is_file() or model.open("rb").read(4) != b"GGUF":
        raise BadInput(f"--model {model}: expected a GGUF file")
    for flag, path in (("--server-bin", args.server_bin), ("--bench-bin", args.bench_bin)):
        if path is not None and not os.access(path, os.X_OK):
            raise BadInput(f"{flag} {path}: expected an executable file")
    if args.n_out < 2:
        raise BadInput("--n-out: expected at least 2 (decode is timed after the first token)")
    try:
        extra, bench_extra = tuple(shlex.split(args.extra)), tuple(shlex.split(args.bench_extra))
    except ValueError as exc:
        raise BadInput(f"--extra/--bench-extra: {exc}") from None
    return Settings(
        model=str(model),
        server_bin=str(args.server_bin) if args.server_bin else None,
        bench_bin=str(args.bench_bin) if args.bench_bin else None,
        n_in=args.n_in,
        n_out=args.n_out,
        depths=args.depths,
        reps=args.reps,
        kv=args.kv,
        flash_attn=args.fa,
        threads=args.threads,
        ngl=args.ngl,
        extra=extra,
        bench_extra=bench_extra,
    )


def run_bench(
    argv: list[str], n_prompt: int, n_gen: int, depth: int, timeout_s: float
) -> tuple[Figure | None, str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"llama-bench did not run: {exc}"
    try:
        return parse_bench(out.stdout, n_prompt, n_gen, depth), ""
    except ValueError as exc:
        last = out.stderr.strip().splitlines()[-1:] or ["no output"]
        return None, f"{exc} (exit {out.returncode}: {last[0][:200]})"


def run_lanebench(s: Settings, p: Point, attribute: bool, work: Path, timeout_s: float) -> dict[str, Any]:
    tag = f"d{p.depth}"
    lanes, out = work / f"lane-{tag}.toml", work / f"lanebench-{tag}.json"
    lanes.write_text(lanes_toml(s, p))
    argv = lanebench_argv(sys.executable, str(lanes), str(out), str(work / f"logs-{tag}"), s, p, attribute)
    say(f"lanebench: {shlex.join(argv[1:])}")
    log_path, rc = work / f"lanebench-{tag}.log", None
    try:
        with log_path.open("w") as log:
            rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        doc: dict[str, Any] = json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"lanebench run took more than {timeout_s:.0f} s (see {log_path})") from None
    except (OSError, ValueError) as exc:
        raise CheckFailed(
            f"lanebench run exited {rc} without a readable JSON: {exc} (see {log_path})"
        ) from None
    return doc


def own_kernel(s: Settings, p: Point, server_bin: str, side: Side, timeout_s: float) -> None:
    """The script's own llama-bench runs: ``pp n_in @ d0`` and ``tg n_out @ d n_in``."""
    bench_bin = s.bench_bin or str(Path(server_bin).with_name("llama-bench"))
    tests = (("kernel_prefill", p.n_in, 0, 0), ("kernel_decode", 0, p.n_out, p.n_in))
    for (key, n_prompt, n_gen, depth), argv in zip(tests, bench_argvs(bench_bin, s, p), strict=True):
        say(f"llama-bench: {shlex.join(argv[1:])}")
        side.figures[key], why = run_bench(argv, n_prompt, n_gen, depth, timeout_s)
        side.raw[f"{key}_argv"] = argv
        side.notes += [f"the script's {key.replace('_', ' ')}: {why}"] if why else []


def own_side(
    s: Settings, p: Point, lb: Side, texts: Requests | None, work: Path, args: argparse.Namespace
) -> tuple[Side, Requests]:
    """The script's own kernel, engine and client figures, and its A/B for each suspect
    lanebench tested (control: its requests before the variants and a server after them)."""
    side = Side()
    server_bin = s.server_bin or (lb.argv[0] if lb.argv else None)
    if server_bin is None:
        raise CheckFailed("lanebench ran no server (see its log) and no --server-bin was given")
    own_kernel(s, p, server_bin, side, args.timeout)
    if args.mirror_argv and not lb.argv:
        side.notes.append("--mirror-argv: lanebench started no server; the lane's flags were used")

    def serve(name: str, change: Sequence[str]) -> list[StreamResult]:
        nonlocal texts
        port = free_port()
        argv = mirrored_argv(lb.argv, port, change) if args.mirror_argv and lb.argv else None
        argv = argv or server_argv(server_bin, s, p, port, change)
        say(f"own server ({name}): {shlex.join(argv[1:])}")
        side.argv = side.argv or argv
        with Server(argv, work / f"server-d{p.depth}-{name}.log", args.timeout) as server:
            texts = texts or Requests(corpus_ids(server, max(s.depths) + s.n_in + 20_000, args.timeout))
            out = texts.run(server, p, s, args.timeout)
        side.raw.setdefault("requests", {})[name] = [asdict(r) for r in out]
        return out

    requests = serve("lane", [])
    side.figures.update(own_figures(requests, p.n_in))
    side.notes += request_notes(requests, p.n_in, p.n_out)
    variants: list[tuple[str, str, list[StreamResult] | str]] = []
    for e in lb.effects:
        try:
            variants.append((e.name, e.change, serve(e.name, e.change.split())))
        except CheckFailed as exc:
            variants.append((e.name, e.change, str(exc)[:200]))
    if variants:
        after = serve("control_after", [])
        control = own_figures([*requests, *after], p.n_in)["client_prefill"]
        for name, change, got in variants:
            if isinstance(got, str):
                side.effects.append(Effect(name, change, control, None, error=got))
            else:
                side.effects.append(Effect(name, change, control, own_figures(got, p.n_in)["client_prefill"]))
    assert texts is not None
    return side, texts


def header(s: Settings, p: Point, lb: Side, own: Side) -> list[str]:
    only_lb, only_own = argv_difference(own.argv, lb.argv)
    lines = [
        f"## depth {p.depth}: job {p.n_in} in / {p.n_out} out, {s.reps} reps after {s.warmup} warm-up",
        f"- what depth means here: {p.meaning()}",
        f"- model {Path(s.model).name}; server {lb.argv[0] if lb.argv else '?'}",
        "- lanebench: `lanebench run --baseline` (and `--attribute`), its --json read with its own "
        "records; independent: this script's own llama-bench, llama-server and http.client clock",
        f"- the script's server: {shlex.join(own.argv[1:])}",
    ]
    if only_lb or only_own:
        lines.append(
            f"- argv: only lanebench's server had {' '.join(only_lb) or 'nothing'}; "
            f"only the script's had {' '.join(only_own) or 'nothing'} (ports left out)"
        )
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    cores = os.cpu_count() or 1
    scale = f"{cores} cores busy = {cores:.2f}"
    lines.append(f"- load average after this depth (1 / 5 / 15 min; {scale}): {load}")
    return lines + [f"- note: {n}" for n in [*lb.notes, *own.notes]]


def show(lines: list[str], rows: list[Row], args: argparse.Namespace) -> None:
    if args.format == "markdown":
        print("\n".join(lines) + "\n\n" + markdown_table(rows, args.tolerance) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(160, Console().width))
    console.print("\n".join(lines), markup=False, highlight=False)
    table = Table(*HEADERS, show_lines=True)
    for row in rows:
        table.add_row(*table_cells(row, args.tolerance))
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        s = settings_from(args)
        work = args.work_dir or Path(tempfile.mkdtemp(prefix="crosscheck-"))
        work.mkdir(parents=True, exist_ok=True)
        say(f"work dir {work}; {len(s.depths)} depth(s)")
        doc: dict[str, Any] = {"settings": {**vars(args), "model": s.model}, "points": []}
        texts = None
        for i, p in enumerate(points(s)):
            attribute = args.attribute == "all" or (args.attribute == "first" and i == 0)
            try:
                lb = lanebench_side(run_lanebench(s, p, attribute, work, args.timeout), f"depth {p.depth}")
            except ValueError as exc:
                raise CheckFailed(f"lanebench's JSON: {exc}") from None
            own, texts = own_side(s, p, lb, texts, work, args)
            rows = point_rows(lb, own, p, s.reps)
            show(header(s, p, lb, own), rows, args)
            doc["points"].append(
                {"depth": p.depth, "n_in": p.n_in, "n_out": p.n_out, "meaning": p.meaning(),
                 "lanebench_argv": lb.argv, "own_argv": own.argv, "notes": lb.notes + own.notes,
                 "own_raw": own.raw,
                 "rows": [r.to_dict(args.tolerance) for r in rows]}
            )  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(doc, indent=1, default=str))
            say(f"wrote {args.json}")
    except CheckFailed as exc:
        print(f"crosscheck: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadInput) else 1
    except KeyboardInterrupt:
        print("crosscheck: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
