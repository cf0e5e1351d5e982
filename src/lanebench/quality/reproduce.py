"""What ``llama-perplexity`` can reproduce of a lane, and which pairings with the reference
mean nothing: refused, one line each, before anything runs.

A KL divergence compares the reference's next-token distributions with a lane's, token for
token, as the build's ``llama-perplexity`` computes them. It means something only when:

- both lanes read the same token ids as the same tokens (same vocabulary, BOS and its use),
  and both are scored by the same build (a KLD across builds measures the builds);
- the tool runs each lane as the server does: the model, KV types, flash attention and GPU
  layers (always passed), placement (``split_mode``, ``tensor_split``, ``main_gpu``,
  ``devices``, ``rpc``: passed when the tool lists the flag), every ``extra_args`` flag and
  ``LLAMA_ARG_*`` variable that can change the output (passed when the tool lists it: it shares
  ``common/arg.cpp`` with the server), and the rest of ``env`` (passed as is).

What is dropped: flags that set the tool's own method (context, batch and micro-batch sizes,
parallel sequences: lanebench chooses those for the slice), logging, sampling (it shapes the
choice of a token, never the distribution), speculative settings (a drafting lane is checked
by its greedy ids instead), and the server-only options in ``SERVER_ONLY``. Everything else the
tool cannot take is refused: ``rpc_local`` (servers lanebench runs only while the lane is
measured), a server-only flag lanebench does not know to leave the output unchanged, a flag the
server does not list, a model given in ``extra_args``, a KV type the tool does not list.

Threads, slots and context size are not compared: they do not change a distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lanebench.config.lanesfile import cap_lines
from lanebench.engines.llamacpp.argv import placement_args
from lanebench.engines.llamacpp.dialect import Dialect
from lanebench.errors import BadInput
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.tokenizer import Vocab, vocab_of
from lanebench.quality.flags import Option, Options, read_options, split_args
from lanebench.quality.runner import TOOL, ToolLane, find_perplexity, probe_tool
from lanebench.quality.select import QualityLane, pick_reference

# options the tool takes that set its own method or its logging: never passed
DROPPED = frozenset(
    {
        "--ctx-size", "--batch-size", "--ubatch-size", "--parallel", "--n-predict", "--keep",
        "--file", "--binary-file", "--prompt", "--chunks", "--kl-divergence", "--kl-divergence-base",
        "--ppl-stride", "--ppl-output-type", "--hellaswag", "--winogrande", "--multiple-choice",
        "--log-disable", "--log-file", "--log-jsonl", "--log-colors", "--verbose", "--verbosity",
        "--log-prefix", "--log-timestamps", "--perf", "--warmup", "--help", "--version",
        "--completion-bash", "--cache-list", "--offline",
    }
)  # fmt: skip
# options that name the model: the lane's 'model' field must (the vocabulary is read from it)
MODEL_FLAGS = frozenset({"--model", "--model-url", "--hf-repo", "--hf-file", "--docker-repo"})
# llama-server options the tool does not take that leave the model's distributions unchanged
# (b11434's --help): where it listens and what it serves, its prompt cache and slots, the text
# around the tokens (chat templates, reasoning, stop strings), images and video
SERVER_ONLY = frozenset(
    {
        "--host", "--port", "--reuse-port", "--path", "--api-prefix", "--api-key", "--api-key-file",
        "--ssl-key-file", "--ssl-cert-file", "--cors-origins", "--cors-methods", "--cors-headers",
        "--cors-credentials", "--ui", "--ui-config", "--ui-config-file", "--ui-mcp-proxy", "--tools",
        "--tools-runtime", "--mcp-servers-config", "--mcp-servers-json", "--agent", "--timeout",
        "--sse-ping-interval", "--threads-http", "--metrics", "--props", "--slots", "--media-path",
        "--sleep-idle-seconds", "--log-prompts-dir", "--alias", "--tags",
        "--cache-prompt", "--cache-reuse", "--cache-ram", "--cache-idle-slots", "--ctx-checkpoints",
        "--checkpoint-min-step", "--kv-unified-per-slot", "--cont-batching", "--slot-prompt-similarity",
        "--slot-save-path",
        "--jinja", "--reasoning-format", "--reasoning", "--reasoning-effort", "--reasoning-budget",
        "--reasoning-budget-message", "--reasoning-preserve", "--chat-template", "--chat-template-file",
        "--chat-template-kwargs", "--skip-chat-parsing", "--prefill-assistant", "--reverse-prompt",
        "--special", "--spm-infill",
        "--mmproj", "--mmproj-url", "--mmproj-auto", "--mmproj-offload", "--mmproj-device",
        "--image-min-tokens", "--image-max-tokens", "--mtmd-batch-max-tokens", "--video-fps",
        "--video-timestamp-interval", "--video-ffmpeg-dir",
    }
)  # fmt: skip
# lane field -> the flag the tool needs for it (engines.argv.placement_args spells them)
PLACEMENT_FLAGS = {
    "split_mode": ("-sm",),
    "tensor_split": ("-ts",),
    "main_gpu": ("-mg",),
    "rpc": ("--rpc",),
    "devices": ("-dev", "--device"),
}


@dataclass(slots=True)
class Build:
    """What the rules need of one lane's build: its server's and its tool's options."""

    server: Options
    tool: Options
    dialect: Dialect


Verdict = str | None  # None: leave the option out; "pass": give it to the tool; else the problem


def _kind(opt: Option, build: Build) -> Verdict:
    names = set(opt.names)
    if names & MODEL_FLAGS:
        return "sets the model; give it in field 'model' (quality reads the vocabulary from there)"
    if names & DROPPED or opt.section in ("sampling", "speculative"):
        return None
    if build.tool.takes(opt):
        return "pass"
    if names & SERVER_ONLY:
        return None
    return (
        f"a llama-server option that {TOOL} does not take, and lanebench does not know that it "
        "leaves the output unchanged: this lane's quality cannot be reproduced"
    )


def _extra_args(q: QualityLane, build: Build) -> tuple[list[str], list[str]]:
    passed: list[str] = []
    problems: list[str] = []
    for arg in split_args(q.spec.extra_args, build.server):
        if arg.option is None:
            problems.append(f"{arg.flag} is not an option of this build's llama-server (its --help)")
            continue
        kind = _kind(arg.option, build)
        if kind == "pass":
            passed += arg.tokens
        elif kind is not None:
            problems.append(f"{arg.flag}: {kind}")
    label = f"lane {q.name!r}: field 'extra_args'"
    return passed, [f"{label}: {p}" for p in problems]


def _env(q: QualityLane, build: Build) -> tuple[list[tuple[str, str]], list[str]]:
    passed: list[tuple[str, str]] = []
    problems: list[str] = []
    for name, value in q.spec.env.items():
        opt = build.server.by_env.get(name)  # None: not the server's (GGML_*, CUDA_*): passed as is
        kind = "pass" if opt is None else _kind(opt, build)
        if kind == "pass":  # the tool reads an option's variable as the server does (arg.cpp)
            passed.append((name, value))
        elif kind is not None:
            problems.append(f"lane {q.name!r}: field 'env': {name}: {kind}")
    return passed, problems


def _placement(q: QualityLane, build: Build) -> tuple[list[str], list[str]]:
    lane = q.spec
    problems = []
    if lane.rpc_local:
        problems.append(
            f"lane {q.name!r}: field 'rpc_local': {TOOL} cannot reach the RPC servers lanebench starts "
            "for the lane (they run only while it is measured): its quality cannot be reproduced"
        )
    for name, flags in PLACEMENT_FLAGS.items():
        if getattr(lane, name) not in (None, []) and build.dialect.first(*flags) is None:
            problems.append(f"lane {q.name!r}: field {name!r}: {TOOL} of this build takes no {flags[-1]}")
    if problems:
        return [], problems
    try:
        return placement_args(lane, build.dialect, lane.rpc), []
    except BadInput as exc:  # a split mode the tool does not list
        return [], [f"lane {q.name!r}: {TOOL}: {str(exc).split(': ', 1)[-1]}"]


def _fields(q: QualityLane, build: Build) -> list[str]:
    lane, d = q.spec, build.dialect
    problems = []
    if lane.kv != "f16" and (not {"-ctk", "-ctv"} <= d.flags or (d.kv_types and lane.kv not in d.kv_types)):
        listed = "no -ctk/-ctv" if not {"-ctk", "-ctv"} <= d.flags else "it lists " + ", ".join(d.kv_types)
        problems.append(
            f"lane {q.name!r}: field 'kv': {TOOL} of this build takes no cache type {lane.kv!r} ({listed})"
        )
    if lane.gpu_layers is not None and "-ngl" not in d.flags:
        problems.append(f"lane {q.name!r}: field 'gpu_layers': {TOOL} of this build takes no -ngl")
    if lane.flash_attn == "on" and "-fa" not in d.flags:
        problems.append(f"lane {q.name!r}: field 'flash_attn': {TOOL} of this build takes no -fa")
    return problems


def reproduce(q: QualityLane, build: Build) -> tuple[ToolLane | None, list[str]]:
    """The lane as the tool runs it, or the problems (one line each) that stop it."""
    assert q.model is not None
    place, p1 = _placement(q, build)
    extra, p2 = _extra_args(q, build)
    env, p3 = _env(q, build)
    problems = _fields(q, build) + p1 + p2 + p3
    if problems:
        return None, problems
    s = q.spec
    return ToolLane(q.model, s.kv, s.flash_attn, s.threads, s.gpu_layers, (*place, *extra), tuple(env)), []


def vocab_difference(ref: Vocab, lane: Vocab) -> str | None:
    """How ``lane``'s vocabulary differs from ``ref``'s in what makes token ids comparable."""
    checks = (
        ("tokenizer", ref.model, lane.model),
        ("tokens", f"{ref.n_tokens} (sha {ref.hash_all})", f"{lane.n_tokens} (sha {lane.hash_all})"),
        ("BOS id", ref.bos, lane.bos),
        ("add_bos", ref.add_bos, lane.add_bos),
        ("add_eos", ref.add_eos, lane.add_eos),
    )
    for what, a, b in checks:
        if a != b:
            return f"{what} {b} against {a}"
    return None


def pair_problems(ref: QualityLane, q: QualityLane, vocab: Callable[[Path], Vocab]) -> list[str]:
    """Why the lane's KLD against the reference would mean nothing (empty: it means something)."""
    assert ref.server_bin is not None and q.server_bin is not None and ref.model and q.model
    out = []
    if ref.server_bin.resolve() != q.server_bin.resolve():
        out.append(
            f"lane {q.name!r}: field 'server_bin': {q.server_bin} is not the build of the reference "
            f"{ref.name!r} ({ref.server_bin}): a KLD across builds measures the builds, not the lane"
        )
    if ref.model.resolve() != q.model.resolve():
        diff = vocab_difference(vocab(ref.model), vocab(q.model))
        if diff is not None:
            out.append(
                f"lane {q.name!r}: field 'model': {q.model.name} has another vocabulary than the "
                f"reference {ref.name!r} ({diff}): the same token ids are not the same tokens"
            )
    return out


@dataclass(slots=True)
class Scoring:
    """The planned quality runs: the reference and every lane the tool scores, as it runs them."""

    reference: QualityLane | None = None
    tool_lanes: dict[str, ToolLane] = field(default_factory=dict)


def scored(q: QualityLane) -> bool:
    """Whether the tool scores the lane (else it gets a verdict or a note, never a figure)."""
    if not q.measurable or q.drafting or q.server_bin is None:
        return False
    return find_perplexity(q.server_bin) is not None


def _build(q: QualityLane) -> Build:
    assert q.server_bin is not None
    tool = find_perplexity(q.server_bin)
    assert tool is not None
    return Build(read_options(q.server_bin), read_options(tool), probe_tool(tool))


def plan_scoring(lanes: Sequence[QualityLane], wanted: Sequence[str], reference: str | None) -> Scoring:
    """Pick the reference and reproduce every lane to score; ``BadInput`` with every problem,
    one line each, when a pairing would mean nothing. Reads ``--help`` and GGUF headers only."""
    ref = pick_reference(lanes, reference)
    by_name = {q.name: q for q in lanes}
    todo = [by_name[n] for n in dict.fromkeys(wanted) if scored(by_name[n])]
    if ref is None or not todo or not scored(ref):
        return Scoring(ref)
    vocabs: dict[Path, Vocab] = {}

    def vocab(path: Path) -> Vocab:
        if path not in vocabs:
            vocabs[path] = vocab_of(open_gguf(path))
        return vocabs[path]

    out = Scoring(ref)
    problems: list[str] = []
    for q in [ref, *(q for q in todo if q is not ref)]:
        tool_lane, found = reproduce(q, _build(q))
        found += [] if q is ref else pair_problems(ref, q, vocab)
        problems += found
        if tool_lane is not None and not found:
            out.tool_lanes[q.name] = tool_lane
    if problems:
        raise BadInput(cap_lines(problems))
    return out
