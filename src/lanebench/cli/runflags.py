"""The measuring commands' options, built from ``RunConfig``'s fields: declared once, so ``run``,
``sweep`` and ``tune`` cannot drift apart, and each value is validated once, by the config.

``@run_flags()`` adds a typer option per ``RunConfig`` field that has a ``Flag`` to a command,
and hands the command the validated ``config`` instead. Only flags the user gave reach the
model (``model_fields_set`` tells a command what was asked for); the rest take its defaults.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import typer

from lanebench.config.run import Flag, RunConfig

F = TypeVar("F", bound=Callable[..., Any])
_GIVEN = {"COMMANDLINE", "ENVIRONMENT", "PROMPT"}  # click's ParameterSource names of a value the user gave
_CTX = "run_flags_context"  # the parameter typer hands the click context in


def _cli_type(name: str, flag: Flag) -> Any:
    """The type typer reads for field ``name``: the field's, or the flag's own."""
    if flag.invert:
        return bool
    if flag.pair:
        return bool | None
    return flag.cli_type or RunConfig.model_fields[name].annotation


def _cli_default(name: str, flag: Flag) -> Any:
    """What typer shows and passes when the flag is not given (the model resolves it then)."""
    field = RunConfig.model_fields[name]
    if flag.invert:
        return False
    if flag.pair or field.default_factory is not None:
        return None
    return field.default


def option_parameter(name: str, flag: Flag, help_text: str | None = None) -> inspect.Parameter:
    """The typer parameter of ``RunConfig`` field ``name``; a command's own ``help_text`` states
    the default itself (it may differ, as tune's --aggregate does)."""
    decls = f"{flag.name}/--no-{flag.name.removeprefix('--')}" if flag.pair else flag.name
    option = typer.Option(
        _cli_default(name, flag),
        decls,
        help=help_text or RunConfig.model_fields[name].description,
        show_default=help_text is None,
        envvar=flag.envvar,
        rich_help_panel=flag.panel,
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=_cli_type(name, flag)
    )


def given_values(ctx: typer.Context, values: Mapping[str, Any], flags: Mapping[str, Flag]) -> dict[str, Any]:
    """The field values of the flags the user gave (an ``--no-x`` flag turns its field off)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in _GIVEN:
            out[name] = not value if flags[name].invert else value
    return out


def run_flags(only: Collection[str] | None = None, help: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Give a command ``RunConfig``'s flags (all, or ``only`` these fields), with ``help``
    overriding a field's help text (and default shown); the command takes a keyword-only
    ``config: RunConfig``."""
    flags = {n: f for n, f in RunConfig.flags().items() if only is None or n in only}
    unknown = set(only or ()) - set(flags) | set(help or {}) - set(flags)
    if unknown:
        raise ValueError(f"not RunConfig flags: {', '.join(sorted(unknown))}")

    def decorate(func: F) -> F:
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "config"]
        if "config" not in sig.parameters or {p.name for p in own} & {*flags, _CTX}:
            raise TypeError(f"{func.__name__}: needs a 'config' parameter and no parameter named as a flag")
        added = [option_parameter(n, f, (help or {}).get(n)) for n, f in flags.items()]
        added.append(inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            ctx = kwargs.pop(_CTX)
            values = {n: kwargs.pop(n) for n in flags}
            config = RunConfig.from_flags(**given_values(ctx, values, flags))
            return func(config=config, **kwargs)

        params = own + added
        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return decorate
