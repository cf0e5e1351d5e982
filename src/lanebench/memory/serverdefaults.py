"""What llama-server does with the placement settings a lane leaves unset, read from the build's
own ``--help`` (pure but for ``read_server_defaults``, which runs it).

b11434 prints them: ``-ngl ... 'auto', or 'all' (default: auto)``, ``-ngld`` likewise,
``--fit [on|off] ... default: 'on'``, ``-fitt ... default: 1024`` (MiB kept free per device),
``-ctkd``/``-ctvd ... (default: f16)`` (the draft's cache types: the lane's ``kv`` is not theirs),
``-sm ... - layer (default)``, ``-mg ... (default: 0)``, ``-kvo ... (default: enabled)``.
A build whose help lists no ``--fit`` has no fit step; a default the help does not state is None
(unknown), and the fit check then says what it assumed.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

AUTO, ALL = -1, -2  # llama.cpp's own encoding of -ngl 'auto' and 'all' (common/common.h)


@dataclass(frozen=True, slots=True)
class HelpOption:
    names: tuple[str, ...]
    text: str  # the option's help, its lines joined by spaces


@dataclass(frozen=True, slots=True)
class ServerDefaults:
    """The build's defaults; None where its help does not say."""

    gpu_layers: int | None = None  # >= 0 a count; AUTO; ALL
    draft_gpu_layers: int | None = None
    fit: bool | None = None  # False: the build has no --fit
    fit_target_mib: float | None = None  # per device
    draft_cache_k: str | None = None
    draft_cache_v: str | None = None
    split_mode: str | None = None
    main_gpu: int | None = None
    kv_offload: bool | None = None


B11434 = ServerDefaults(AUTO, AUTO, True, 1024.0, "f16", "f16", "layer", 0, True)  # for tests and docs


def help_options(text: str) -> list[HelpOption]:
    """Each option of a llama.cpp ``--help``: a line starting with ``-`` names it (``-ngl,
    --gpu-layers, --n-gpu-layers N  help...``), indented lines continue its help."""
    out: list[HelpOption] = []
    names: list[str] = []
    lines: list[str] = []
    for line in [*text.splitlines(), "-"]:
        if line.startswith("-") or not line.startswith(" "):
            if names:
                out.append(HelpOption(tuple(names), " ".join(lines)))
            names, lines = [], []
            if not line.startswith("-"):
                continue
            words = line.split()
            for i, word in enumerate(words):
                names.append(word.rstrip(","))
                if not word.endswith(",") or i + 1 == len(words) or not words[i + 1].startswith("-"):
                    break
            lines.append(" ".join(words[len(names) :]))
        else:
            lines.append(line.strip())
    return out


def parse_layers(text: str) -> int | None:
    """``auto`` → AUTO, ``all`` → ALL, an integer (``-1`` is auto, below it all); None otherwise."""
    text = text.strip().strip("'\"").lower()
    if text in ("auto", "all"):
        return AUTO if text == "auto" else ALL
    try:
        n = int(text)
    except ValueError:
        return None
    return n if n >= 0 else (AUTO if n == -1 else ALL)


def _find(options: list[HelpOption], flag: str) -> HelpOption | None:
    return next((o for o in options if flag in o.names), None)


def _default(opt: HelpOption | None, pattern: str = r"default:\s*'?([\w.+-]+)'?") -> str | None:
    if opt is None:
        return None
    m = re.search(pattern, opt.text)
    return m[1] if m else None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def parse_server_defaults(help_text: str) -> ServerDefaults:
    """The defaults a llama-server ``--help`` states (see the module's note)."""
    opts = help_options(help_text)
    ngl, ngld = _default(_find(opts, "-ngl")), _default(_find(opts, "-ngld"))
    fit_opt = _find(opts, "--fit")
    fit = _default(fit_opt)
    mg = _default(_find(opts, "-mg"), r"\(default:\s*(\d+)\)")
    kvo = _default(_find(opts, "-kvo") or _find(opts, "-nkvo"), r"\(default:\s*(\w+)\)")
    sm = _default(_find(opts, "-sm"), r"-\s*(\w+)\s*\(default\)")
    return ServerDefaults(
        gpu_layers=parse_layers(ngl) if ngl else None,
        draft_gpu_layers=parse_layers(ngld) if ngld else None,
        fit=False if fit_opt is None else {"on": True, "off": False}.get(fit or ""),
        fit_target_mib=_number(_default(_find(opts, "-fitt"))),
        draft_cache_k=_default(_find(opts, "-ctkd"), r"\(default:\s*(\w+)\)"),
        draft_cache_v=_default(_find(opts, "-ctvd"), r"\(default:\s*(\w+)\)"),
        split_mode=sm,
        main_gpu=int(mg) if mg else None,
        kv_offload={"enabled": True, "disabled": False}.get(kvo or ""),
    )


@lru_cache(maxsize=16)
def read_server_defaults(binary: Path) -> ServerDefaults | None:
    """``parse_server_defaults`` of ``binary --help``; None when it cannot be run."""
    try:
        proc = subprocess.run(
            [str(binary), "--help"], capture_output=True, text=True, timeout=30, errors="replace", check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout + proc.stderr
    return parse_server_defaults(text) if "--port" in text else None
