"""Predict, before any server starts, whether a draft loads and drafts for a main model.

``check_draft`` returns one line per failed rule ("rule: expected X, found Y"); [] means
every rule passed. Rules for an MTP head mirror its dialect's loader (``lanebench.gguf.heads``:
llama.cpp's ``gemma4-assistant`` loader and ``draft-mtp`` setup, the Atomic fork's
``gemma4_assistant`` loader); rules for a draft model mirror ``common_speculative_are_compatible``.
``written_head_problems`` applies the rules that need no main model to a head just written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from lanebench.errors import BadInput
from lanebench.gguf import heads
from lanebench.gguf import keys as K
from lanebench.gguf.heads import HeadDialect, HeadParams
from lanebench.gguf.meta import Meta
from lanebench.gguf.reader import GgufFile, open_gguf, problems
from lanebench.gguf.tokenizer import Vocab, vocab_of


class Dialect(Protocol):
    """What the checks need of a server build (``engines.llamacpp.dialect.Dialect`` has it): its
    speculative-flag family, whether it drafts with an MTP head, its version line."""

    @property
    def speculative(self) -> str: ...
    @property
    def can_mtp(self) -> bool: ...
    @property
    def version_text(self) -> str: ...


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
    if heads.of_arch(draft.arch) is not None:
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


def build_head_dialect(dialect: Dialect | None) -> HeadDialect | None:
    """The head dialect a build loads (None: unknown / not given)."""
    return heads.for_server(dialect.speculative) if dialect is not None else None


def check_head(main: GgufFile, head: GgufFile, dialect: Dialect | None) -> list[str]:
    """Every rule for an assistant head, in the order a loader would trip on them."""
    out: list[str] = []
    if dialect is not None and not dialect.can_mtp:
        out.append(
            f"build: expected MTP drafting (--spec-type draft-mtp or --mtp-head), "
            f"found neither ({dialect.version_text})"
        )
    hd = heads.of_arch(head.arch)
    want = build_head_dialect(dialect)
    if hd is None:
        expected = want.arch if want else heads.archs()
        return [*out, f"architecture: expected {expected}, found {head.arch!r}"]
    if want is not None and hd is not want:
        out.append(
            f"dialect: this build ({want.name}) loads {want.arch!r} heads, found {head.arch!r} "
            f"(the {hd.name} shape; fix: lanebench gguf translate HEAD --to {want.name} -o OUT)"
        )
    if main.arch != hd.target_arch:
        out.append(f"target architecture: expected {hd.target_arch}, found main architecture {main.arch!r}")
    hp, missing = hd.params(head.meta)
    out += missing
    if hp is not None:
        out += hd.rules(head.meta, hp, main.meta)
        out += geometry_rules(main.meta, hp)
        out += tensor_rules(head, hp, hd)
    return out + vocab_rules(vocab_of(main), vocab_of(head), main, head, exact=True)


def head_problems(head: GgufFile) -> list[str]:
    """The rules of ``check_head`` that need neither a main model nor a build."""
    hd = heads.of_arch(head.arch)
    if hd is None:
        return [f"architecture: expected {heads.archs()}, found {head.arch!r}"]
    hp, missing = hd.params(head.meta)
    if hp is None:
        return missing
    return hd.rules(head.meta, hp) + tensor_rules(head, hp, hd)


def written_head_problems(path: Path) -> list[str]:
    """What ``gguf inspect`` and ``gguf check`` would refuse in the head just written at
    ``path``: its format and metadata (as any reader checks them), then ``head_problems``."""
    return problems(path, head_problems)


def geometry_rules(main: Meta, hp: HeadParams) -> list[str]:
    """The head attends to the main model's KV cache: head sizes and KV heads must match
    the main model's last sliding layer and last full layer."""
    out: list[str] = []
    n = main.get(K.BLOCK_COUNT, 0)
    pattern = main.get(K.SLIDING_WINDOW_PATTERN)
    layers = list(pattern) if isinstance(pattern, tuple) else []
    if n < 2 or len(layers) != n or not (layers[-2] and not layers[-1]):
        found = layers[-2:] if layers else pattern
        return [f"main layers: expected the last two to be sliding then full attention, found {found}"]
    m_full = main.get(K.KEY_LENGTH, 0)
    m_swa = main.get(K.KEY_LENGTH_SWA, m_full)
    m_kv = main.get(K.HEAD_COUNT_KV, (0,) * n)
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


def tensor_rules(head: GgufFile, hp: HeadParams, hd: HeadDialect) -> list[str]:
    """Required tensors present with the loader's shapes; no tensor the loader won't take."""
    want = hd.expected_tensors(hp, vocab_of(head).n_tokens)
    optional = hd.optional_tensors()
    missing = [n for n in want if n not in head.tensors]
    wrong = [n for n, s in want.items() if n in head.tensors and head.tensors[n].shape != s]
    extra = [n for n in head.tensors if n not in want and n not in optional]
    out = [f"tensor: expected {n}, found none" for n in missing]
    out += [f"tensor shape: expected {n} {list(want[n])}, found {list(head.tensors[n].shape)}" for n in wrong]
    out += [f"tensor: unexpected {n} (the {hd.name} loader refuses tensors it does not use)" for n in extra]
    if len(out) > MAX_LINES_PER_RULE:
        out = [
            *out[:MAX_LINES_PER_RULE],
            f"tensor: ... and {len(out) - MAX_LINES_PER_RULE} more tensor problems",
        ]
    return out
