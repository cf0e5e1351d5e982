"""``lanebench roofline`` and ``lanebench host --bandwidth``: the decode ceiling and the bandwidth
behind it (``lanebench advise`` is ``cli.advise_cmd``)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lanebench.analysis.ceilings import Rooflines
from lanebench.analysis.roofline import Roofline, decode_ceiling_tps, ggml_type
from lanebench.cli.common import console, print_json
from lanebench.config.job import JobSpec
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("roofline")(roofline)
    app.command("host")(host)
