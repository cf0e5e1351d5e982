"""Predict, before any server starts, whether a draft loads and drafts for a main model.

``check_draft`` returns one line per failed rule ("rule: expected X, found Y"); [] means
every rule passed. Rules for an MTP head mirror llama.cpp's ``gemma4-assistant`` loader and
``draft-mtp`` setup (and the Atomic fork's ``gemma4_assistant`` loader); rules for a draft
model mirror ``common_speculative_are_compatible``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lanebench.errors import BadInput
from lanebench.gguf.heads import (
    ARCH,
    TARGET_ARCH,
    HeadFormat,
    HeadParams,
    expected_tensors,
    format_of_arch,
    optional_tensors,
    per_layer,
)
from lanebench.gguf.reader import GgufFile, open_gguf
from lanebench.gguf.tokenizer import Vocab, vocab_of

if TYPE_CHECKING:
    from lanebench.engines.dialect import Dialect

MAX_LINES_PER_RULE = 4
SPEC_VOCAB_MAX_SIZE_DIFFERENCE = 128  # common/speculative.cpp
SPEC_VOCAB_CHECK_START_TOKEN_ID = 5


def check_draft(
    main: Path, draft: Path, kind: Literal["model", "mtp"], dialect: Dialect | None = None
) -> list[str]:
    """Problems that would stop ``draft`` from loading/drafting for ``main`` in that build;
    [] = all pass. Each problem is one line naming the rule, expected vs found."""
    m = open_gguf(main, "main model")
    if not Path(draft).exists():
        open_gguf(draft, "draft")  # raises BadInput naming the path
    try:
        d = open_gguf(draft, "draft")
    except BadInput as exc:
        return [f"file: {exc}"]
    if kind == "mtp":
        return check_head(m, d, dialect)
    return check_model(m, d, dialect)


# ---- draft model -----------------------------------------------------------------------


def check_model(main: GgufFile, draft: GgufFile, dialect: Dialect | None) -> list[str]:
    """llama.cpp's draft-model compatibility rules, plus 'this build can draft'."""
    out: list[str] = []
    if dialect is not None and dialect.speculative == "none":
        out.append(f"build: expected speculative flags, found none ({dialect.version_text})")
    if format_of_arch(draft.arch) is not None:
        out.append(
            f"architecture: expected a plain model as draft, found MTP head {draft.arch!r} (use kind 'mtp')"
        )
    return out + vocab_rules(vocab_of(main), vocab_of(draft), main, draft, exact=False)


def vocab_rules(mv: Vocab, dv: Vocab, main: GgufFile, draft: GgufFile, exact: bool) -> list[str]:
    """Vocabulary rules; ``exact`` (heads) demands identical token text from id 0."""
    out: list[str] = []
    if mv.vocab_type != dv.vocab_type:
        out.append(f"vocab type: expected {mv.vocab_type} ({mv.model}), found {dv.vocab_type} ({dv.model})")
    for what, a, b in (("add_bos", mv.add_bos, dv.add_bos), ("add_eos", mv.add_eos, dv.add_eos)):
        if a != b:
            out.append(f"{what}: expected {a} (main), found {b}")
    if mv.add_bos and mv.bos != dv.bos:
        out.append(f"BOS id: expected {mv.bos} (main), found {dv.bos}")
    if mv.add_eos and mv.eos != dv.eos:
        out.append(f"EOS id: expected {mv.eos} (main), found {dv.eos}")
    if exact:
        if (mv.n_tokens, mv.hash_all) != (dv.n_tokens, dv.hash_all):
            out.append(
                f"vocabulary: expected the main model's {mv.n_tokens} tokens (sha {mv.hash_all}), "
                f"found {dv.n_tokens} tokens (sha {dv.hash_all})"
            )
        if mv.bos != dv.bos or mv.eos != dv.eos:
            out.append(f"BOS/EOS ids: expected {mv.bos}/{mv.eos} (main), found {dv.bos}/{dv.eos}")
        return out
    diff = abs(mv.n_tokens - dv.n_tokens)
    if diff > SPEC_VOCAB_MAX_SIZE_DIFFERENCE:
        out.append(
            f"vocab size: expected within {SPEC_VOCAB_MAX_SIZE_DIFFERENCE} of {mv.n_tokens} (main), "
            f"found {dv.n_tokens}"
        )
    elif (first := _first_text_difference(main, draft)) is not None:
        out.append(
            f"token text: expected identical from id {SPEC_VOCAB_CHECK_START_TOKEN_ID}, "
            f"first differs at id {first}"
        )
    return out


def _first_text_difference(main: GgufFile, draft: GgufFile) -> int | None:
    a, b = main.tokens(), draft.tokens()
    for i in range(SPEC_VOCAB_CHECK_START_TOKEN_ID, min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return None


# ---- MTP head --------------------------------------------------------------------------


def build_head_format(dialect: Dialect | None) -> HeadFormat | None:
    """The head dialect a build loads (None: unknown / not given)."""
    if dialect is None:
        return None
    return {"upstream": "upstream", "atomic": "atomic"}.get(dialect.speculative)  # type: ignore[return-value]


def check_head(main: GgufFile, head: GgufFile, dialect: Dialect | None) -> list[str]:
    """Every rule for an assistant head, in the order a loader would trip on them."""
    out: list[str] = []
    if dialect is not None and not dialect.can_mtp:
        out.append(
            f"build: expected MTP drafting (--spec-type draft-mtp or --mtp-head), "
            f"found neither ({dialect.version_text})"
        )
    hd = format_of_arch(head.arch)
    want = build_head_format(dialect)
    if hd is None:
        expected = ARCH[want] if want else " or ".join(ARCH.values())
        return [*out, f"architecture: expected {expected}, found {head.arch!r}"]
    if want is not None and hd != want:
        out.append(
            f"dialect: this build ({want}) loads {ARCH[want]!r} heads, found {head.arch!r} "
            f"(the {hd} shape; fix: lanebench gguf translate HEAD --to {want} -o OUT)"
        )
    if main.arch != TARGET_ARCH:
        out.append(f"target architecture: expected {TARGET_ARCH}, found main architecture {main.arch!r}")
    hp, missing = head_params_of(head, hd)
    out += missing
    if hp is not None:
        out += backbone_rules(main, head, hp, hd)
        out += geometry_rules(main, hp)
        out += tensor_rules(head, hp, hd)
    return out + vocab_rules(vocab_of(main), vocab_of(head), main, head, exact=True)


def _key(hd: HeadFormat, suffix: str) -> str:
    return f"{ARCH[hd]}.{suffix}"


def head_params_of(head: GgufFile, hd: HeadFormat) -> tuple[HeadParams | None, list[str]]:
    """HeadParams from a head's keys, or the list of missing required keys."""
    required = [
        "embedding_length",
        "block_count",
        "feed_forward_length",
        "attention.head_count",
        "attention.key_length",
        "attention.sliding_window_pattern",
    ]
    required.append("embedding_length_out" if hd == "upstream" else "n_embd_backbone")
    missing = [
        f"metadata: expected key {_key(hd, k)}, found none" for k in required if head.arch_key(k) is None
    ]
    if missing:
        return None, missing
    n = int(head.arch_key("block_count"))
    is_swa = layer_pattern(head)
    if is_swa is None:
        found = head.arch_key("attention.sliding_window_pattern")
        return None, [
            f"sliding_window_pattern: expected {n} booleans (one per block_count layer), found {found!r}"
        ]
    heads = set(per_layer(head.arch_key("attention.head_count"), n))
    if len(heads) > 1:
        found = head.arch_key("attention.head_count")
        return None, [f"attention.head_count: expected one count for every layer, found {found}"]
    n_head = heads.pop() if heads else 0
    hd_full = int(head.arch_key("attention.key_length"))
    backbone_key = "embedding_length_out" if hd == "upstream" else "n_embd_backbone"
    return HeadParams(
        hidden=int(head.arch_key("embedding_length")),
        backbone=int(head.arch_key(backbone_key)),
        is_swa=is_swa,
        n_head=n_head,
        kv_heads=per_layer(head.arch_key("attention.head_count_kv", n_head), n),
        head_dim_full=hd_full,
        head_dim_swa=int(head.arch_key("attention.key_length_swa", hd_full)),
        ffn=per_layer(head.arch_key("feed_forward_length"), n),
        sliding_window=int(head.arch_key("attention.sliding_window", 0)),
        rope_base=0.0,
        rope_base_swa=0.0,
        rope_dim_full=0,
        rope_dim_swa=0,
        rms_eps=0.0,
        context=0,
    ), []


def layer_pattern(g: GgufFile) -> tuple[bool, ...] | None:
    """One bool per layer (True: sliding window) when the file stores the pattern that way
    (the reader has checked it holds ``block_count`` entries); None otherwise."""
    pattern = g.arch_key("attention.sliding_window_pattern")
    return tuple(bool(x) for x in pattern) if isinstance(pattern, list) else None


def backbone_rules(main: GgufFile, head: GgufFile, hp: HeadParams, hd: HeadFormat) -> list[str]:
    """Backbone width = main embedding_length; upstream's extra invariants."""
    out: list[str] = []
    n_embd = main.arch_key("embedding_length")
    key = _key(hd, "embedding_length_out" if hd == "upstream" else "n_embd_backbone")
    if hp.backbone != n_embd:
        out.append(f"backbone width: expected {n_embd} (main embedding_length), found {hp.backbone} ({key})")
    if hd == "upstream":
        if hp.backbone == hp.hidden:
            out.append(
                f"embedding_length_out: expected it to differ from embedding_length, found both {hp.hidden}"
            )
        nextn = head.arch_key("nextn_predict_layers")
        if nextn != hp.n_layer:
            out.append(f"nextn_predict_layers: expected {hp.n_layer} (block_count), found {nextn}")
    else:
        target = head.arch_key("requires_target_arch")
        if target is not None and target != main.arch:
            out.append(f"requires_target_arch: expected {main.arch!r} (main), found {target!r}")
    return out


def geometry_rules(main: GgufFile, hp: HeadParams) -> list[str]:
    """The head attends to the main model's KV cache: head sizes and KV heads must match
    the main model's last sliding layer and last full layer."""
    out: list[str] = []
    n = int(main.arch_key("block_count", 0))
    pattern = list(layer_pattern(main) or ())
    if n < 2 or len(pattern) != n or not (pattern[-2] and not pattern[-1]):
        found = pattern[-2:] if pattern else main.arch_key("attention.sliding_window_pattern")
        return [f"main layers: expected the last two to be sliding then full attention, found {found}"]
    m_full = int(main.arch_key("attention.key_length", 0))
    m_swa = int(main.arch_key("attention.key_length_swa", m_full))
    m_kv = per_layer(main.arch_key("attention.head_count_kv", 0), n)
    if hp.head_dim_full != m_full:
        out.append(f"key_length: expected {m_full} (main), found {hp.head_dim_full}")
    if hp.head_dim_swa != m_swa:
        out.append(f"key_length_swa: expected {m_swa} (main), found {hp.head_dim_swa}")
    for il, swa in enumerate(hp.is_swa[: len(hp.kv_heads)]):
        want = m_kv[-2] if swa else m_kv[-1]
        if hp.kv_heads[il] != want:
            out.append(
                f"head_count_kv[{il}]: expected {want} (main's last {'sliding' if swa else 'full'} layer), "
                f"found {hp.kv_heads[il]}"
            )
    return out[: MAX_LINES_PER_RULE + 2]


def tensor_rules(head: GgufFile, hp: HeadParams, hd: HeadFormat) -> list[str]:
    """Required tensors present with the loader's shapes; no tensor the loader won't take."""
    n_vocab = vocab_of(head).n_tokens
    want = expected_tensors(hp, n_vocab, hd)
    missing = [n for n in want if n not in head.tensors]
    wrong = [n for n, s in want.items() if n in head.tensors and head.tensors[n].shape != s]
    extra = [n for n in head.tensors if n not in want and n not in optional_tensors(hd)]
    out = [f"tensor: expected {n}, found none" for n in missing]
    out += [f"tensor shape: expected {n} {list(want[n])}, found {list(head.tensors[n].shape)}" for n in wrong]
    out += [f"tensor: unexpected {n} (the {hd} loader refuses tensors it does not use)" for n in extra]
    if len(out) > MAX_LINES_PER_RULE:
        out = [
            *out[:MAX_LINES_PER_RULE],
            f"tensor: ... and {len(out) - MAX_LINES_PER_RULE} more tensor problems",
        ]
    return out
