"""``lanebench gguf inspect|check|translate``, ``lanebench convert-head``, ``lanebench synth``.

Thin adapters: parse flags, build one options object, call one function in
``lanebench.gguf``, print a table (or ``--json``). Domain errors surface as one line.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from lanebench.cli.common import console, err_console, print_json
from lanebench.errors import BadInput
from lanebench.gguf import heads, hf
from lanebench.gguf.quant import SYNTH_QTYPES, parse_qtype
from lanebench.gguf.shapes import FULL, SWA, HeadShape, MainShape, preset
from lanebench.gguf.writer import TensorPlan, refuse_existing

gguf_app = typer.Typer(
    name="gguf",
    help="Inspect, check and translate GGUF files (models, drafts, MTP assistant heads).",
    no_args_is_help=True,
)


DIALECTS = " | ".join(heads.names())


def _dialect(value: str, flag: str) -> str:
    """A registered head dialect's name; BadInput naming ``flag`` and listing them otherwise."""
    return heads.dialect(value, flag).name


def _progress(total: int | None, label: str) -> tuple[Progress, Any]:
    """A byte-progress bar on stderr and the callback that advances it per tensor."""
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    task = progress.add_task(label, total=total)

    def on_tensor(t: TensorPlan) -> None:
        progress.update(task, advance=t.nbytes)

    return progress, on_tensor


# ---- inspect ---------------------------------------------------------------------------


@gguf_app.command("inspect")
def inspect_cmd(
    file: Path = typer.Argument(..., help="GGUF file to describe"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Architecture, head dialect, key metadata, tensors, parameters, vocabulary hash."""
    from lanebench.gguf.inspect import inspect_gguf

    info = inspect_gguf(file)
    if as_json:
        print_json(info)
        return
    render_inspect(info, console)


def text(value: Any) -> str:
    """``value`` as literal text for rich: markup escaped, control characters shown as escapes
    (a GGUF's strings are the file author's, not ours to interpret)."""
    s = str(value)
    if not s.isprintable():
        s = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in s)
    return escape(s)


def render_inspect(info: dict[str, Any], out: Console) -> None:
    """The inspect tables: summary, tensor types, metadata."""
    head = Table(title=text(info["path"]), show_header=False)
    for k in ("architecture", "kind", "file_bytes", "tensor_count", "tensor_bytes", "parameters"):
        head.add_row(k, f"{info[k]:,}" if isinstance(info[k], int) else text(info[k]))
    v = info["vocab"]
    head.add_row(
        "vocab",
        text(
            f"{v['model']} {v['size']:,} tokens, sha {v['tokens_sha256_16']}, bos {v['bos']} eos {v['eos']}"
        ),
    )
    out.print(head)
    types = Table("type", "tensors", "bytes")
    for name, e in info["tensor_types"].items():
        types.add_row(text(name), str(e["tensors"]), f"{e['bytes']:,}")
    out.print(types)
    meta = Table("key", "value")
    for k, val in info["metadata"].items():
        meta.add_row(text(k), text(val))
    out.print(meta)


# ---- check -----------------------------------------------------------------------------


@gguf_app.command("check")
def check_cmd(
    main: Path = typer.Option(..., "--main", help="the main (target) model GGUF"),
    head: Path | None = typer.Option(None, "--head", help="an MTP assistant head GGUF"),
    draft: Path | None = typer.Option(None, "--draft", help="a separate draft model GGUF"),
    server_bin: Path | None = typer.Option(
        None, "--server-bin", help="llama-server whose dialect to check against (default: discovery)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Predict whether MAIN + HEAD/DRAFT load and draft in that build. Exit 0 only if all pass."""
    from lanebench.engines.llamacpp.dialect import probe
    from lanebench.engines.llamacpp.discovery import find_server_bin
    from lanebench.gguf.check import check_draft
    from lanebench.gguf.reader import open_gguf

    if (head is None) == (draft is None):
        raise BadInput("give exactly one of --head (MTP assistant head) or --draft (draft model)")
    kind = "mtp" if head is not None else "model"
    open_gguf(main, "main model")  # a bad input file is named before the build is looked for
    dialect = probe(find_server_bin(server_bin))
    problems = check_draft(main, head or draft, kind, dialect)  # type: ignore[arg-type]
    if as_json:
        print_json({"kind": kind, "build": dialect.to_dict(), "ok": not problems, "problems": problems})
    else:
        build = f"build: {dialect.version_text or 'unknown'} ({dialect.speculative} dialect)"
        render_check(problems, kind, build, console)
    if problems:
        raise typer.Exit(1)


def render_check(problems: list[str], kind: str, build: str, out: Console) -> None:
    """The check report: the build line, one FAIL line per problem, or OK."""
    out.print(text(build), highlight=False)
    for line in problems:
        out.print(f"[red]FAIL[/] {text(line)}", highlight=False, soft_wrap=True)
    if not problems:
        out.print(f"[green]OK[/] every {kind} rule passes", highlight=False)


# ---- translate -------------------------------------------------------------------------


@gguf_app.command("translate")
def translate_cmd(
    head: Path = typer.Argument(..., help="head GGUF to translate"),
    to: str = typer.Option(..., "--to", help=f"target dialect: {DIALECTS}"),
    out: Path = typer.Option(..., "-o", "--output", help="output GGUF"),
    force: bool = typer.Option(False, "--force", help="replace OUT if it exists"),
) -> None:
    """Rewrite a head's metadata and tensor names into another dialect; tensor data untouched."""
    from lanebench.gguf.translate import translate

    src, size = translate(head, _dialect(to, "--to"), out, force)
    console.print(text(f"{head} ({src}) -> {out} ({to}), {size:,} bytes"), highlight=False)


# ---- convert-head ----------------------------------------------------------------------


def convert_head_cmd(
    hf_dir: Path = typer.Argument(..., help="Hugging Face assistant checkpoint folder"),
    main: Path = typer.Option(..., "--main", help="main gemma4 GGUF (vocabulary and checks)"),
    out: Path = typer.Option(..., "-o", "--output", help="output head GGUF"),
    qtype: str = typer.Option("q8_0", "--type", help="q8_0 | f16 | bf16 | f32"),
    dialect: str = typer.Option("upstream", "--dialect", help=DIALECTS),
    force: bool = typer.Option(False, "--force", help="replace OUT if it exists"),
    verify: bool = typer.Option(False, "--verify", help="dequantise and compare every tensor"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Convert an HF assistant checkpoint (safetensors + config.json) into a GGUF head."""
    from lanebench.gguf.convert import ConvertOptions, convert_head
    from lanebench.gguf.convert import verify as verify_fn

    opts = ConvertOptions(hf_dir, main, out, parse_qtype(qtype), _dialect(dialect, "--dialect"), force)
    refuse_existing(out, force)
    total = _source_bytes(hf_dir)
    progress, on_tensor = _progress(total, "convert")
    with progress:
        result = convert_head(opts, on_tensor=on_tensor)
    summary: dict[str, Any] = {
        "output": str(result.out),
        "output_bytes": result.out_bytes,
        "source_bytes": result.source_bytes,
        "tensors": len(result.mapped),
        "skipped": result.skipped,
        "generated": result.generated,
    }
    if verify:
        stats = verify_fn(hf_dir, out, result.mapped)
        summary["verify"] = {k: asdict(v) for k, v in stats.items()}
        summary["verify_ok"] = all(v.max_ratio <= 1.0 for v in stats.values())
    _print_convert(summary, as_json)
    if verify and not summary["verify_ok"]:
        raise typer.Exit(1)


def _source_bytes(hf_dir: Path) -> int:
    from lanebench.gguf.st_io import checkpoint_files

    try:
        return sum(f.stat().st_size for f in checkpoint_files(hf_dir))
    except BadInput:
        hf.read_config(hf_dir)  # a missing config.json is the clearer message
        raise


def _print_convert(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    console.print(
        text(
            f"wrote {summary['output']}: {summary['output_bytes']:,} bytes, {summary['tensors']} tensors "
            f"from {summary['source_bytes']:,} source bytes"
        ),
        highlight=False,
    )
    for s in summary["skipped"]:
        console.print(text(f"skipped {s}"), highlight=False)
    for s in summary["generated"]:
        console.print(text(f"generated {s}"), highlight=False)
    if "verify" in summary:
        table = Table("type", "tensors", "max |error|", "error / bound", "worst tensor", title="verify")
        for name, v in summary["verify"].items():
            table.add_row(
                name,
                str(v["tensors"]),
                f"{v['max_abs']:.3g}",
                f"{v['max_ratio']:.3f}",
                text(v["worst_tensor"]),
            )
        console.print(table)
        console.print("verify: " + ("[green]pass[/]" if summary["verify_ok"] else "[red]FAIL[/]"))


# ---- synth -----------------------------------------------------------------------------


def _layer_types(n: int, every: int) -> tuple[str, ...]:
    types = tuple(FULL if (i + 1) % every == 0 else SWA for i in range(n))
    if n < 2 or types[-1] != FULL or types[-2] != SWA:
        raise BadInput(f"--layers {n} --full-every {every}: the last two layers must be sliding then full")
    return types


def _shapes(name: str, o: dict[str, int | None]) -> tuple[MainShape, HeadShape]:
    main, head = preset(name)
    if o["layers"] is not None or o["full_every"] is not None:
        n = o["layers"] or main.n_layer
        main = replace(main, layer_types=_layer_types(n, o["full_every"] or 6))
    changes: dict[str, Any] = {
        k: o[k] for k in ("hidden", "ffn", "n_expert", "n_expert_used", "expert_ffn") if o[k] is not None
    }
    main = replace(main, **changes)
    if main.n_expert and not main.n_expert_used:
        raise BadInput("--experts needs --experts-used (top-k experts per token)")
    if o["head_hidden"] is not None or o["head_ffn"] is not None:
        head = replace(head, hidden=o["head_hidden"] or head.hidden, ffn=o["head_ffn"] or head.ffn)
    return main, head


def synth_cmd(
    out_dir: Path = typer.Option(..., "-o", "--output", help="folder for main.gguf and assistant-hf/"),
    preset_name: str = typer.Option("tiny", "--preset", help="tiny | tiny-moe | 12b | 26b-a4b | 31b"),
    what: str = typer.Option("both", "--what", help="main | assistant | both"),
    architecture: str = typer.Option(
        "Gemma4AssistantForCausalLM", "--class", help="HF class of the assistant (either Gemma 4 class)"
    ),
    tokenizer_from: Path | None = typer.Option(
        None, "--tokenizer-from", help="GGUF whose vocabulary to copy (default: the embedded 270M)"
    ),
    qtype: str = typer.Option(
        "q8_0", "--type", help="main model weight type: q4_0 | q8_0 | f16 | bf16 | f32"
    ),
    hidden: int | None = typer.Option(None, "--hidden", help="main hidden width (elements)"),
    layers: int | None = typer.Option(None, "--layers", help="main layer count"),
    full_every: int | None = typer.Option(None, "--full-every", help="every K-th layer is full attention"),
    ffn: int | None = typer.Option(None, "--ffn", help="main FFN width (shared expert for MoE)"),
    experts: int | None = typer.Option(None, "--experts", help="MoE expert count (0: dense)"),
    experts_used: int | None = typer.Option(None, "--experts-used", help="experts per token"),
    expert_ffn: int | None = typer.Option(None, "--expert-ffn", help="FFN width of one expert"),
    head_hidden: int | None = typer.Option(None, "--head-hidden", help="assistant hidden width"),
    head_ffn: int | None = typer.Option(None, "--head-ffn", help="assistant FFN width"),
    shards: int = typer.Option(1, "--shards", help="split the assistant safetensors into N shards"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    force: bool = typer.Option(False, "--force", help="replace existing outputs"),
) -> None:
    """Write shape-faithful random-weight models: a gemma4 main GGUF and an HF assistant."""
    if what not in {"main", "assistant", "both"}:
        raise BadInput(f"--what {what!r} is not one of main, assistant, both")
    hf.lookup(architecture, "--class")
    overrides = {
        "hidden": hidden,
        "layers": layers,
        "full_every": full_every,
        "ffn": ffn,
        "n_expert": experts,
        "n_expert_used": experts_used,
        "expert_ffn": expert_ffn,
        "head_hidden": head_hidden,
        "head_ffn": head_ffn,
    }
    main, head = _shapes(preset_name, overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    if what in {"main", "both"}:
        _synth_main(out_dir / "main.gguf", main, tokenizer_from, qtype, seed, force)
    if what in {"assistant", "both"}:
        _synth_assistant(
            out_dir / "assistant-hf", main, head, architecture, seed, shards, tokenizer_from, force
        )


def _synth_main(
    target: Path, main: MainShape, tokenizer_from: Path | None, qtype: str, seed: int, force: bool
) -> None:
    """The random-weight main GGUF, its vocabulary from ``tokenizer_from`` (default: the 270M)."""
    from lanebench.config.models import default_model_path
    from lanebench.gguf.synth import synth_main

    refuse_existing(target, force)
    tok = tokenizer_from or default_model_path()
    progress, on_tensor = _progress(None, "synth main")
    with progress:
        size = synth_main(target, main, tok, parse_qtype(qtype, "--type", SYNTH_QTYPES), seed, on_tensor)
    console.print(text(f"wrote {target}: {size:,} bytes ({main.name}, random weights)"), highlight=False)


def _synth_assistant(
    hf_dir: Path,
    main: MainShape,
    head: HeadShape,
    architecture: str,
    seed: int,
    shards: int,
    tokenizer_from: Path | None,
    force: bool,
) -> None:
    """The random-weight HF assistant checkpoint (config.json and safetensors) beside the main."""
    from lanebench.gguf.synth import synth_assistant

    if hf_dir.exists() and not force:
        raise BadInput(f"output {hf_dir} already exists (pass --force to replace it)")
    files = synth_assistant(hf_dir, main, head, architecture, seed, shards, tokenizer_from=tokenizer_from)
    console.print(
        text(f"wrote {hf_dir}: config.json + {len(files)} safetensors ({architecture})"), highlight=False
    )


def register(app: typer.Typer) -> None:
    """Add ``gguf`` (inspect, check, translate), ``convert-head`` and ``synth`` to ``app``."""
    app.add_typer(gguf_app, name="gguf")
    app.command("convert-head")(convert_head_cmd)
    app.command("synth")(synth_cmd)
