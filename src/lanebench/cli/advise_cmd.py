"""``lanebench advise``: which block size should I use? The speculative model fitted to a run
(from the results database or a ``run --json`` file), or, given a lanes TOML, a drafting lane
measured at emulated acceptance and its decode predicted at any acceptance and block size."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lanebench.analysis.ceilings import lane_ceilings
from lanebench.analysis.specmodel import Advice, advise
from lanebench.cli.common import console, print_json
from lanebench.cli.execute import measure_with_progress, open_results
from lanebench.cli.explain_cmd import _mb, resolve_bandwidth
from lanebench.cli.runflags import run_flags
from lanebench.config.lanes import LaneSpec
from lanebench.config.lanesfile import load_lanes
from lanebench.config.run import RunConfig
from lanebench.errors import BadInput
from lanebench.host.bandwidth import GB, KNOWN_DEVICES
from lanebench.orchestration.emulated_advice import EmulatedAdvice, advise_by_emulation, pick_lane
from lanebench.records.lane import LaneResult, RunResults, results_from_document

# what advise measures with a lanes TOML: the job's sizes and reps, where the server is, the store
MEASURING = ("n_in", "n_out", "reps", "depth", "server_bin", "out_dir", "db", "use_db")


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


def _ceilings_table(ceilings: list[dict[str, Any]], bw: dict[str, Any]) -> Table:
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
    return t


def advise_by_measuring(
    lanes_file: Path, lane: str | None, profile: float, check: str | None, config: RunConfig
) -> EmulatedAdvice:
    """A drafting lane of ``lanes_file`` measured at emulated acceptance ``profile`` (and at each
    α of ``check``), one warm-up and no N-slot batches."""
    alphas = [_share(x, "--check") for x in check.split(",") if x.strip()] if check else []
    if len(config.depth) > 1:
        raise BadInput(f"--depth: advise fits at one depth, got {','.join(map(str, config.depth))}")
    # at a depth, the lanes continue a conversation of that many tokens, one stream (the envelope's
    # one-stream cell stands in for the single requests)
    config = config.with_job(replace(config.job, warmup=1, aggregate=0, concurrency=[]))
    picked = pick_lane(load_lanes(lanes_file), lane)
    store = open_results(config)

    def measure(lanes: Sequence[LaneSpec], run_config: RunConfig) -> list[LaneResult]:
        return measure_with_progress(lanes, run_config, store=store).results

    return advise_by_emulation(picked, config, measure, profile=profile, check=alphas)


def advise_run(
    results: str, db: str | None, bandwidth: str | None, device: str | None, as_json: bool
) -> None:
    """The speculative model fitted to a stored or saved run; each lane's ceiling."""
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
        console.print(_ceilings_table(ceilings, bw))


@run_flags(only=MEASURING, help={"db": "Results database of a run id, and of runs measured here."})
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
    bandwidth: str | None = typer.Option(
        None, "--bandwidth", help="Memory bandwidth for the decode ceiling, e.g. 256GB/s."
    ),
    device: str | None = typer.Option(
        None, "--device", help=f"Known device for the ceiling: {', '.join(KNOWN_DEVICES)}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    *,
    config: RunConfig,
) -> None:
    """Which block size should I use? The speculative model fitted to a run; each lane's ceiling.

    Given a lanes TOML instead, a drafting lane's cost is measured once at an emulated acceptance
    (--profile), and its decode is predicted at any acceptance and block size; --check measures
    other profiles against the prediction.
    """
    if not results.endswith(".toml"):
        advise_run(results, config.db, bandwidth, device, as_json)
        return
    adv = advise_by_measuring(Path(results), lane, profile, check, config)
    if as_json:
        print_json(adv.to_dict())
    else:
        _print_emulated(adv)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("advise")(advise_cmd)
