"""A lane's ``extra_args`` (llama-server's spelling) as ``llama-bench`` flags (pure).

The kernel view must run the kernels the lane's server runs. Every server option that changes
the kernels is either passed to llama-bench in llama-bench's own spelling (``-ub``, ``-ot``,
``-nkvo 1``, ``--repack 0``, ...) or named in the record's note; options that only the server
has (sampling, caches, HTTP, logging, speculation) are named as server-side. Nothing in
``extra_args`` is dropped without a word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# llama.cpp's own regex for MoE expert weights (common/common.h LLM_FFN_EXPS_REGEX): what the
# server's --cpu-moe keeps on the CPU, as one llama-bench override
CPU_MOE_OVERRIDE = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU"
_FLAG = re.compile(r"^--?[A-Za-z]")


def split_args(args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``['-ub', '256', '--no-mmap']`` → ``[('-ub', ['256']), ('--no-mmap', [])]``: each flag
    with the values that follow it (a value never starts with ``-`` and a letter, so ``-1`` is
    a value). Leading values without a flag are kept under the flag ``''``."""
    out: list[tuple[str, list[str]]] = []
    for arg in args:
        if _FLAG.match(arg):
            out.append((arg, []))
        elif out:
            out[-1][1].append(arg)
        else:
            out.append(("", [arg]))
    return out


def _same(flag: str) -> Callable[[list[str]], list[str] | None]:
    """The value as it is, under llama-bench's ``flag``."""
    return lambda v: [flag, v[0]] if len(v) == 1 else None


def _fixed(*bench: str) -> Callable[[list[str]], list[str] | None]:
    """A server switch (no value) as fixed llama-bench arguments."""
    return lambda v: list(bench) if not v else None


def _listed(flag: str, sep: str) -> Callable[[list[str]], list[str] | None]:
    """A server list separated by ',' in llama-bench's separator (',' sweeps there)."""
    return lambda v: [flag, v[0].replace(",", sep)] if len(v) == 1 else None


def _numeric(flag: str) -> Callable[[list[str]], list[str] | None]:
    return lambda v: [flag, v[0]] if len(v) == 1 and re.fullmatch(r"-?\d+", v[0]) else None


@dataclass(frozen=True, slots=True)
class Mapping:
    """One server option that changes the kernels: its spellings, and llama-bench's form."""

    server: tuple[str, ...]
    bench_flag: str  # the llama-bench flag the mapped form needs (checked against its --help)
    to_bench: Callable[[list[str]], list[str] | None]  # None: this value has no equivalent


KERNEL_OPTIONS: tuple[Mapping, ...] = (
    Mapping(("-t", "--threads"), "-t", _numeric("-t")),
    Mapping(("-b", "--batch-size"), "-b", _numeric("-b")),
    Mapping(("-ub", "--ubatch-size"), "-ub", _numeric("-ub")),
    Mapping(("-ngl", "--gpu-layers", "--n-gpu-layers"), "-ngl", _numeric("-ngl")),
    Mapping(("-ctk", "--cache-type-k"), "-ctk", _same("-ctk")),
    Mapping(("-ctv", "--cache-type-v"), "-ctv", _same("-ctv")),
    Mapping(("-fa", "--flash-attn"), "-fa", _same("-fa")),
    Mapping(("-ot", "--override-tensor"), "-ot", _listed("-ot", ";")),
    Mapping(("-cmoe", "--cpu-moe"), "-ot", _fixed("-ot", CPU_MOE_OVERRIDE)),
    Mapping(("-ncmoe", "--n-cpu-moe"), "-ncmoe", _numeric("-ncmoe")),
    Mapping(("-nkvo", "--no-kv-offload"), "-nkvo", _fixed("-nkvo", "1")),
    Mapping(("-kvo", "--kv-offload"), "-nkvo", _fixed("-nkvo", "0")),
    Mapping(("--repack",), "--repack", _fixed("--repack", "1")),
    Mapping(("-nr", "--no-repack"), "--repack", _fixed("--repack", "0")),
    Mapping(("--no-host",), "--no-host", _fixed("--no-host", "1")),
    Mapping(("--op-offload",), "-nopo", _fixed("-nopo", "0")),
    Mapping(("--no-op-offload",), "-nopo", _fixed("-nopo", "1")),
    Mapping(("-lm", "--load-mode"), "-lm", _same("-lm")),
    Mapping(("-lzm", "--lazy-mode"), "-lzm", _same("-lzm")),
    Mapping(("--no-mmap",), "-mmp", _fixed("-mmp", "0")),  # builds before --load-mode
    Mapping(("--mmap",), "-mmp", _fixed("-mmp", "1")),
    Mapping(("--numa",), "--numa", _same("--numa")),
    Mapping(("-C", "--cpu-mask"), "-C", _same("-C")),
    Mapping(("--cpu-strict",), "--cpu-strict", _numeric("--cpu-strict")),
    Mapping(("--poll",), "--poll", _numeric("--poll")),
    Mapping(("--prio",), "--prio", _numeric("--prio")),
    Mapping(("-sm", "--split-mode"), "-sm", _same("-sm")),
    Mapping(("-mg", "--main-gpu"), "-mg", _numeric("-mg")),
    Mapping(("-ts", "--tensor-split"), "-ts", _listed("-ts", "/")),
    Mapping(("-dev", "--device"), "-dev", _listed("-dev", "/")),
    Mapping(("--rpc",), "-rpc", _same("-rpc")),
    Mapping(("-fitt", "--fit-target"), "-fitt", _numeric("-fitt")),
    Mapping(("-fitc", "--fit-ctx"), "-fitc", _numeric("-fitc")),
)
_BY_SPELLING = {s: m for m in KERNEL_OPTIONS for s in m.server}

# Server options that change what runs on the device but that llama-bench cannot take: named in
# the note as "no equivalent" (so are options lanebench does not know at all).
# Server-only options: the kernels are the same with or without them.
SERVER_ONLY_PREFIXES = ("--spec-", "--draft", "--log-", "--ssl-", "--api-key", "--chat-template", "--slot")
SERVER_ONLY = frozenset(
    {
        # caches, slots and scheduling
        "-cram", "--cache-ram", "--cache-reuse", "-ctxcp", "--ctx-checkpoints", "--swa-checkpoints",
        "-cms", "--checkpoint-min-step", "--cache-idle-slots", "--no-cache-idle-slots",
        "--cache-prompt", "--no-cache-prompt", "-np", "--parallel", "-cb", "--cont-batching",
        "-nocb", "--no-cont-batching", "--context-shift", "--no-context-shift", "--keep",
        # sampling (the kernels stop at the logits)
        "--samplers", "--sampler-seq", "--sampling-seq", "-s", "--seed", "--temp", "--temperature",
        "--top-k", "--top-p", "--min-p", "--top-nsigma", "--top-n-sigma", "--xtc-probability",
        "--xtc-threshold", "--typical", "--typical-p", "--repeat-last-n", "--repeat-penalty",
        "--presence-penalty", "--frequency-penalty", "--dry-multiplier", "--dry-base",
        "--dry-allowed-length", "--dry-penalty-last-n", "--dry-sequence-breaker", "--mirostat",
        "--mirostat-lr", "--mirostat-ent", "--ignore-eos", "-l", "--logit-bias", "-n", "--predict",
        "--n-predict", "-bs", "--backend-sampling",
        # HTTP, endpoints, logging, speculation (llama-bench does not draft: noted elsewhere)
        "--host", "--port", "--metrics", "--props", "--slots", "--no-slots", "-to", "--timeout",
        "--threads-http", "--sse-ping-interval", "-lv", "--verbosity", "--log-verbosity", "-v",
        "--verbose", "--log-verbose", "--log-disable", "--log-file", "--perf", "--no-perf",
        "--warmup", "--no-warmup", "-md", "--model-draft", "--mtp-head", "-ngld", "-ctkd", "-ctvd",
        "-td", "-tbd", "-devd", "--no-webui", "--webui", "-a", "--alias", "--jinja", "--no-jinja",
    }
)  # fmt: skip


def _show(flag: str, values: list[str]) -> str:
    return " ".join([flag, *values]).strip()


@dataclass(slots=True)
class Mapped:
    """What became of a lane's ``extra_args`` in the kernel view."""

    args: list[tuple[str, str | None]]  # llama-bench (flag, value) pairs, in order
    no_equivalent: list[str]  # server options (with values) llama-bench cannot take
    server_only: list[str]  # server options that do not change the kernels

    def notes(self) -> list[str]:
        out = []
        if self.no_equivalent:
            shown = ", ".join(repr(a) for a in self.no_equivalent)
            out.append(f"extra_args {shown}: llama-bench has no equivalent, left at its default")
        if self.server_only:
            shown = ", ".join(repr(a) for a in self.server_only)
            out.append(f"extra_args {shown}: server-side (not the kernels), not passed")
        return out


def map_extra_args(extra_args: Sequence[str], bench_flags: frozenset[str]) -> Mapped:
    """The kernel-changing ``extra_args`` as llama-bench (flag, value) pairs, and the rest named.

    A mapped flag this llama-bench does not list (its ``--help``) counts as no equivalent."""
    out = Mapped([], [], [])
    for flag, values in split_args(extra_args):
        mapping = _BY_SPELLING.get(flag)
        bench = mapping.to_bench(values) if mapping is not None else None
        if mapping is not None and bench is not None and mapping.bench_flag in bench_flags:
            out.args.append((bench[0], bench[1] if len(bench) > 1 else None))
        elif mapping is None and (flag in SERVER_ONLY or flag.startswith(SERVER_ONLY_PREFIXES)):
            out.server_only.append(_show(flag, values))
        else:
            out.no_equivalent.append(_show(flag, values))
    return out
