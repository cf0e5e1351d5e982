"""``lanebench roofline``, ``lanebench host --bandwidth`` and ``lanebench advise``: explain the numbers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lanebench.analysis.ceilings import Rooflines, lane_ceilings
from lanebench.analysis.roofline import Roofline, decode_ceiling_tps, ggml_type
from lanebench.analysis.specmodel import Advice, advise
from lanebench.cli import options as o
from lanebench.cli.common import console, print_json
from lanebench.cli.execute import make_job, make_options, measure_with_progress
from lanebench.config.defaults import DEFAULT_JOB
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import load_lanes
from lanebench.errors import BadInput
from lanebench.host.bandwidth import (
    GB,
    KNOWN_DEVICES,
    find_device,
    llc_bytes,
    measure_bandwidth,
    parse_bandwidth,
    usable_cores,
)
from lanebench.orchestration import RunOptions
from lanebench.orchestration.emulated_advice import EmulatedAdvice, advise_by_emulation, pick_lane
from lanebench.records.lane import LaneResult, RunResults, results_from_document
from lanebench.store import open_store

_JOB = JobSpec()
DEFAULT_CTX = _JOB.n_in + _JOB.n_out // 2  # mean context while decoding the standard job
LABELS = {
    "attention": "attention (q, k, v, o)",
    "ffn_dense": "dense FFN (incl. shared experts)",
    "experts": "routed experts (active share)",
    "output": "output projection",
    "embed_lookup": "embedding lookups (one row)",
    "other": "norms, router, other",
}


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def resolve_bandwidth(
    bandwidth: str | None, device: str | None, measure: bool = False
) -> dict[str, Any] | None:
    """The bandwidth to divide by, from exactly one of --bandwidth, --device, --measure-bandwidth."""
    given = [
        name
        for name, v in (("--bandwidth", bandwidth), ("--device", device), ("--measure-bandwidth", measure))
        if v
    ]
    if len(given) > 1:
        raise BadInput(f"{' and '.join(given)}: give only one source of bandwidth")
    if bandwidth:
        return {"bytes_per_s": parse_bandwidth(bandwidth), "source": f"--bandwidth {bandwidth}"}
    if device:
        d = find_device(device)
        return {"bytes_per_s": d.bandwidth_gbs * GB, "source": f"{d.name} datasheet peak ({d.url})"}
    if measure:
        r = measure_bandwidth()
        return {
            "bytes_per_s": r.bandwidth_bytes_per_s,
            "source": f"measured read bandwidth of this host ({r.threads} threads)",
        }
    return None


def _breakdown_table(title: str, r: Roofline) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("part")
    t.add_column("MB per token", justify="right")
    t.add_column("share", justify="right")
    total = r.total_bytes or 1
    for key, label in LABELS.items():
        t.add_row(label, _mb(r.breakdown[key]), f"{100 * r.breakdown[key] / total:.1f}%")
    kv_label = f"KV cache ({r.kv_type}, ctx {r.ctx}; {r.n_swa_layers} SWA layers at {min(r.ctx, r.window)})"
    t.add_row(
        kv_label if r.window else f"KV cache ({r.kv_type}, ctx {r.ctx})",
        _mb(r.kv_bytes),
        f"{100 * r.kv_bytes / total:.1f}%",
    )
    t.add_row("weights subtotal", _mb(r.weights_bytes), f"{100 * r.weights_bytes / total:.1f}%")
    t.add_row("[bold]total[/]", f"[bold]{_mb(r.total_bytes)}[/]", "100.0%")
    return t


def _describe(r: Roofline) -> str:
    bits = [f"{r.arch}, {r.n_layer} layers", f"file tensors {_mb(r.file_tensor_bytes)} MB"]
    bits.append(
        "tied embeddings: token_embd read once, as the output matrix"
        if r.tied_embeddings
        else "separate output matrix"
    )
    if r.expert_count:
        bits.append(f"experts {r.expert_used_count} of {r.expert_count} active per token")
    return "; ".join(bits)


def roofline(
    model: Path = typer.Argument(..., help="Main model GGUF."),
    head: Path | None = typer.Option(
        None, "--head", help="Draft model or MTP head GGUF: also its bytes per drafted token."
    ),
    ctx: int = typer.Option(
        DEFAULT_CTX,
        "--ctx",
        help="Context (tokens) at which the KV cache is read; default = mean of the standard job.",
    ),
    kv: str = typer.Option("f16", "--kv", help="KV cache type (f16, q8_0, q4_0, ...)."),
    bandwidth: str | None = typer.Option(
        None, "--bandwidth", help="Memory bandwidth, e.g. 256 (GB/s), 256GB/s, 3.35TB/s."
    ),
    device: str | None = typer.Option(
        None, "--device", help=f"Use a known device's datasheet peak: {', '.join(KNOWN_DEVICES)}."
    ),
    measure: bool = typer.Option(
        False, "--measure-bandwidth", help="Measure this host's read bandwidth (a few seconds)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Bytes read per generated token, by part, from the GGUF's own tensor sizes; and the decode ceiling."""
    ggml_type(kv, "--kv")  # fail before reading anything
    bw = resolve_bandwidth(bandwidth, device, measure)
    rooflines = Rooflines(ctx)
    main = rooflines(model, kv, "MODEL")
    drafted = rooflines(head, kv, "--head") if head else None
    out: dict[str, Any] = {"model": str(model), "roofline": main.to_dict(), "bandwidth": bw}
    if drafted is not None:
        out.update(head=str(head), head_roofline=drafted.to_dict())
    if bw:
        out["ceiling_tps"] = decode_ceiling_tps(main.total_bytes, bw["bytes_per_s"])
        out["ceiling_tps_weights_only"] = decode_ceiling_tps(main.weights_bytes, bw["bytes_per_s"])
    if as_json:
        print_json(out)
        return
    console.print(f"[bold]{model.name}[/]: {_describe(main)}", highlight=False)
    console.print(_breakdown_table("bytes read per generated token", main))
    for note in main.notes:
        console.print(f"note: {note}", highlight=False)
    if drafted is not None:
        console.print(f"[bold]{head.name if head else ''}[/]: {_describe(drafted)}", highlight=False)
        console.print(_breakdown_table("head: bytes read per drafted token", drafted))
    if bw:
        console.print(
            f"decode ceiling: {out['ceiling_tps']:.1f} tok/s "
            f"(weights only {out['ceiling_tps_weights_only']:.1f}) "
            f"at {bw['bytes_per_s'] / GB:,.0f} GB/s — {bw['source']}",
            highlight=False,
        )


def _devices_table() -> Table:
    t = Table(title="known devices (datasheet peaks)", title_justify="left")
    for col in ("key", "device", "GB/s", "source"):
        t.add_column(col, justify="right" if col == "GB/s" else "left", overflow="fold")
    for d in KNOWN_DEVICES.values():
        t.add_row(d.key, d.name, f"{d.bandwidth_gbs:,.0f}", f"{d.source} — {d.url}")
    return t


def host(
    bandwidth: bool = typer.Option(
        False, "--bandwidth", help="Measure this host's memory bandwidth (a few seconds)."
    ),
    seconds: float = typer.Option(6.0, "--seconds", help="Time budget of the measurement."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """This host's memory bandwidth (measured with --bandwidth) beside datasheet peaks of known devices."""
    if seconds <= 0:
        raise BadInput(f"--seconds: expected a positive time budget, got {seconds}")
    result = measure_bandwidth(budget_s=seconds) if bandwidth else None
    if as_json:
        print_json(
            {
                "cores": usable_cores(),
                "llc_bytes": llc_bytes(),
                "bandwidth": result.to_dict() if result else None,
                "known_devices": [asdict(d) for d in KNOWN_DEVICES.values()],
            }
        )
        return
    console.print(
        f"host: {usable_cores()} usable cores, last-level cache {llc_bytes() / 2**20:.0f} MiB",
        highlight=False,
    )
    if result:
        t = Table(title="measured memory bandwidth (numpy, median)", title_justify="left")
        t.add_column("buffer MiB", justify="right")
        t.add_column("read GB/s", justify="right")
        t.add_column("copy GB/s (read+write)", justify="right")
        for size in result.sizes_bytes:
            t.add_row(
                f"{size / 2**20:,.0f}",
                f"{result.per_size['read'][size]:.1f}",
                f"{result.per_size['copy'].get(size, 0):.1f}",
            )
        t.add_row("[bold]median[/]", f"[bold]{result.read_gbs:.1f}[/]", f"[bold]{result.copy_gbs:.1f}[/]")
        console.print(t)
        console.print(f"{result.threads} threads; the roofline uses the read figure.", highlight=False)
    else:
        console.print("pass --bandwidth to measure this host", highlight=False)
    console.print(_devices_table())


def load_run_document(path: Path) -> RunResults:
    """Read a results JSON written by ``lanebench run --json``."""
    if not path.is_file():
        raise BadInput(f"RESULTS: {path} is not a file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"RESULTS: {path} is not readable JSON ({exc})") from None
    try:
        return results_from_document(doc, f"RESULTS: {path}")
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def resolve_run(ref: str, db: str | None) -> RunResults:
    """A run document from a JSON file path, else from the results database by run id."""
    path = Path(ref)
    if path.suffix == ".json" or path.exists():
        return load_run_document(path)
    from lanebench.store import open_store

    store = open_store(db)
    return RunResults(store.get_run(ref).job, store.load_lanes(ref))


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def _advice_table(advice: list[Advice]) -> Table:
    t = Table(
        title="speculative decoding: measured and best (speed-up = E[tokens/step] / (1 + n·c))",
        title_justify="left",
    )
    for col in (
        "lane",
        "B (n)",
        "accept",
        "α",
        "tok/step",
        "model E",
        "plain lane",
        "cost c",
        "speed-up",
        "best B",
        "best speed-up",
    ):
        t.add_column(col, justify="left" if col in ("lane", "plain lane") else "right")
    for a in advice:
        t.add_row(
            a.lane,
            f"{a.block_size} ({a.draft_n})",
            _fmt(a.acceptance, ".3f"),
            _fmt(a.alpha, ".3f"),
            _fmt(a.tokens_per_step),
            _fmt(a.expected_tokens_per_step),
            a.plain_lane or "–",
            _fmt(a.draft_cost, ".3f"),
            _fmt(a.measured_speedup),
            str(a.best_block_size or "–"),
            _fmt(a.best_speedup),
        )
    return t


def _share(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{flag}: expected acceptance values such as 0.5,0.95, got {text!r}") from None


def _print_emulated(adv: EmulatedAdvice) -> None:
    f = adv.fitted
    console.print(
        f"[bold]{adv.lane}[/]: B = {adv.block_size}; plain decode {_fmt(adv.plain_decode_tps, '.1f')} tok/s; "
        f"at emulated α = {adv.profile:g}: {_fmt(f.decode_tps if f else None, '.1f')} tok/s, "
        f"{_fmt(f.tokens_per_step if f else None)} tokens per step, fitted cost c = "
        f"{_fmt(f.draft_cost if f else None, '.3f')} (plain-token times per drafted token)",
        highlight=False,
    )
    if adv.grid:
        t = Table(title="predicted decode (tok/s) at acceptance α and block size B", title_justify="left")
        t.add_column("α", justify="right")
        for b in adv.grid:
            t.add_column(f"B={b}", justify="right")
        for a in next(iter(adv.grid.values())):
            t.add_row(f"{a:g}", *(_fmt(adv.grid[b].get(a), ".1f") for b in adv.grid))
        console.print(t)
    if adv.checks:
        t = Table(title=f"prediction against emulated runs at B = {adv.block_size}", title_justify="left")
        for col in ("α", "predicted", "measured (min–max)", "error", "within 10%"):
            t.add_column(col, justify="right")
        for c in adv.checks:
            err = c.error
            spread = (
                f" ({_fmt(c.measured_min, '.1f')}–{_fmt(c.measured_max, '.1f')})" if c.measured_min else ""
            )
            t.add_row(
                f"{c.alpha:g}",
                _fmt(c.predicted_tps, ".1f"),
                _fmt(c.measured_tps, ".1f") + spread,
                "–" if err is None else f"{100 * err:+.1f}%",
                "–" if err is None else ("yes" if abs(err) <= 0.10 else "no"),
            )
        console.print(t)
    for note in adv.notes:
        console.print(f"note: {note}", highlight=False)


def advise_cmd(
    results: str = typer.Argument(
        ...,
        help="A run id from `lanebench runs`, a JSON file of lanebench run --json, or a lanes "
        "TOML: then a drafting lane is measured at emulated acceptance and its speed predicted.",
    ),
    lane: str | None = typer.Option(
        None, "--lane", help="With a lanes TOML: the drafting lane (default: the first)."
    ),
    profile: float = typer.Option(
        0.8, "--profile", help="With a lanes TOML: the emulated acceptance α the cost is fitted at."
    ),
    check: str | None = typer.Option(
        None,
        "--check",
        help="With a lanes TOML: α values (e.g. 0.5,0.95) to measure and compare with the prediction.",
    ),
    n_in: o.NIn = None,
    n_out: o.NOut = None,
    reps: o.Reps = 3,
    server_bin: o.ServerBin = None,
    out_dir: o.OutDir = None,
    no_db: o.NoDb = False,
    db: str | None = typer.Option(None, "--db", envvar="LANEBENCH_DB", help="Results database for a run id."),
    bandwidth: str | None = typer.Option(
        None, "--bandwidth", help="Memory bandwidth for the decode ceiling, e.g. 256GB/s."
    ),
    device: str | None = typer.Option(
        None, "--device", help=f"Known device for the ceiling: {', '.join(KNOWN_DEVICES)}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Which block size should I use? The speculative model fitted to a run; each lane's ceiling.

    Given a lanes TOML instead, a drafting lane's cost is measured once at an emulated acceptance
    (--profile), and its decode is predicted at any acceptance and block size; --check measures
    other profiles against the prediction.
    """
    if results.endswith(".toml"):
        alphas = [_share(x, "--check") for x in check.split(",") if x.strip()] if check else []
        job = make_job(DEFAULT_JOB, n_in, n_out, reps, 1, 0)
        opts = make_options(job, server_bin=server_bin, out_dir=out_dir)
        picked = pick_lane(load_lanes(Path(results)), lane)
        store = None if no_db else open_store(db)

        def measure(lanes: Sequence[LaneSpec], run_opts: RunOptions) -> list[LaneResult]:
            return measure_with_progress(lanes, run_opts, store=store).results

        adv = advise_by_emulation(picked, opts, measure, profile=profile, check=alphas)
        if as_json:
            print_json(adv.to_dict())
        else:
            _print_emulated(adv)
        return
    bw = resolve_bandwidth(bandwidth, device)
    run = resolve_run(results, db)
    advice = advise(run.lanes)
    ceilings = lane_ceilings(run.job, run.lanes, advice, bw["bytes_per_s"]) if bw else None
    if as_json:
        print_json({"advice": [a.to_dict() for a in advice], "bandwidth": bw, "ceilings": ceilings})
        return
    if advice:
        console.print(_advice_table(advice))
        for a in advice:
            for note in a.notes:
                console.print(f"{a.lane}: {note}", highlight=False)
    else:
        console.print("no drafting lanes in this run: nothing to advise on block size", highlight=False)
    if ceilings is not None and bw:
        t = Table(
            title=f"decode ceiling at {bw['bytes_per_s'] / GB:,.0f} GB/s ({bw['source']})",
            title_justify="left",
        )
        for col in ("lane", "MB/token", "ceiling tok/s", "decode tok/s", "% of ceiling"):
            t.add_column(col, justify="left" if col == "lane" else "right")
        for row in ceilings:
            if "error" in row:
                t.add_row(str(row["lane"]), "–", "–", "–", row["error"])
                continue
            t.add_row(
                str(row["lane"]),
                _mb(row["bytes_per_token"]),
                f"{row['ceiling_tps']:.1f}",
                _fmt(row["decode_tps"], ".1f"),
                _fmt(row["pct"], ".0f"),
            )
        console.print(t)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("roofline")(roofline)
    app.command("host")(host)
    app.command("advise")(advise_cmd)
