"""``lanebench quality A.gguf B.gguf``: two model files compared outside a lanes file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import ValidationError

from lanebench.cli import options as o
from lanebench.cli.common import console, err_console
from lanebench.cli.runflags import run_flags
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.errors import BadInput, LaneFailed, NotFound
from lanebench.orchestration.quality_step import quality_only
from lanebench.records.lane import LaneResult
from lanebench.records.quality import QualityStatus
from lanebench.report.quality import quality_table
from lanebench.report.tables import to_markdown, to_rich
from lanebench.store.sinks import write_atomic


def _lane(name: str, model: Path, kv: str, flag: str, **fields: object) -> LaneSpec:
    try:
        return LaneSpec.model_validate({"name": name, "model": model, "kv": kv, **fields})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "value"
        where = flag if field == "kv" else f"--{field.replace('_', '-')}"
        raise BadInput(f"{where}: {err['msg']}") from None


# the run options that apply when two files are scored outside a lanes file
QUALITY_OPTIONS = ("server_bin", "out_dir", "quality_tokens", "json_out")


@run_flags(only=QUALITY_OPTIONS, help={"json_out": "Write both lanes' quality records to this JSON file."})
def quality(
    reference: Path = typer.Argument(..., help="The reference GGUF (A), e.g. the F16 or Q8_0 model."),
    model: Path = typer.Argument(..., help="The GGUF compared with A; may be A itself with another --kv."),
    kv: str = typer.Option("f16", "--kv", help="KV cache type of B (f16, q8_0, q4_0, ...)."),
    ref_kv: str = typer.Option("f16", "--ref-kv", help="KV cache type of A."),
    flash_attn: str = typer.Option("auto", "--flash-attn", help="Flash attention for both: on, off, auto."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (-t)."),
    gpu_layers: int | None = typer.Option(None, "--gpu-layers", help="Layers on the GPU (-ngl)."),
    markdown: o.Markdown = None,
    *,
    config: RunConfig,
) -> None:
    """KL divergence, same top-1 and perplexity of B against A, from the build's llama-perplexity."""
    common = {"flash_attn": flash_attn, "threads": threads, "gpu_layers": gpu_layers}
    a = _lane(f"A: {reference.name}", reference.expanduser(), ref_kv, "--ref-kv", reference=True, **common)
    b_name = f"B: {model.name}" + (f" ({kv.upper()} KV)" if kv != ref_kv or model == reference else "")
    b = _lane(b_name, model.expanduser(), kv, "--kv", **common)

    def say(text: str) -> None:
        err_console.print(text, highlight=False, markup=False)

    outcome = quality_only([a, b], config, say)
    results = [LaneResult(name=x.name, lane=x, quality=outcome.records.get(x.name)) for x in (a, b)]
    table = quality_table(results)
    assert table is not None
    console.print(to_rich(table))
    if markdown is not None:
        write_atomic(markdown, to_markdown(table))
    if config.json_out is not None:
        write_atomic(
            config.json_out, json.dumps({"lanes": [r.to_dict() for r in results]}, indent=2, default=str)
        )
    if outcome.slice is not None:
        sl = outcome.slice
        limited = f" (limited by {sl.limited_by})" if sl.limited_by else ""
        say(f"{sl.tokens:,} tokens scored{limited}; {outcome.tool_runs} tool runs, {outcome.seconds:.0f} s")
    rec = outcome.records.get(b.name)
    if rec is not None and rec.status == QualityStatus.UNAVAILABLE:
        raise NotFound(f"lane {b.name!r}: {rec.note}")
    if rec is not None and rec.status == QualityStatus.FAILED:
        raise LaneFailed(f"lane {b.name!r}: {rec.note}")


def register(app: typer.Typer) -> None:
    app.command("quality")(quality)
