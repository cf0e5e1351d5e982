"""How many tokens to score: the slice of the corpus sized against free disk and memory (pure).

``llama-perplexity --kl-divergence-base`` writes, per chunk of ``ctx`` tokens, the chunk's token
ids and, for each of its scored tokens (the second half of the chunk, ``ctx - 1 - ctx // 2``),
the whole distribution as 16-bit values: ``2 * ((n_vocab + 1) // 2) + 4`` of them. For Gemma's
262,144-token vocabulary that is 524,296 bytes a scored token. File layout, from
tools/perplexity/perplexity.cpp (b11434): ``"_logits_"``, n_ctx, n_vocab, n_chunk (int32 each),
then the tokens, then the rows. The tool writes it with an unchecked ``ofstream``, so a short
file is the only sign of a full disk: the size is checked against ``base_file_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_BYTES = 8 + 3 * 4
DEFAULT_CTX = 512
DEFAULT_BATCH = 2048  # llama-perplexity's -b default: ctx-sized chunks evaluated together
CHARS_PER_TOKEN_LOW = 6  # a conservative corpus length: real tokenizers give ~4 chars a token
DISK_RESERVE = 256 << 20  # bytes left free beside the base file
MEMORY_SHARE = 0.8  # of available memory the tool may take


class SliceError(ValueError):
    """Not even one chunk fits; the message names what is short and by how much."""


def scored_per_chunk(ctx: int) -> int:
    """Tokens of a chunk that are scored: the second half, less the last one."""
    return ctx - 1 - ctx // 2


def row_bytes(n_vocab: int) -> int:
    """Bytes the base file keeps per scored token."""
    return 2 * (2 * ((n_vocab + 1) // 2) + 4)


def base_file_bytes(n_vocab: int, ctx: int, chunks: int) -> int:
    """The exact size of a complete base file."""
    return HEADER_BYTES + chunks * ctx * 4 + chunks * scored_per_chunk(ctx) * row_bytes(n_vocab)


def working_bytes(n_vocab: int, ctx: int, batch: int) -> int:
    """Memory the tool needs beyond the model: float logits of every scored token evaluated
    together, plus one chunk's rows of the base file in the comparing run."""
    n_seq = max(1, batch // ctx)
    return n_seq * (ctx - ctx // 2) * n_vocab * 4 + n_seq * scored_per_chunk(ctx) * row_bytes(n_vocab)


@dataclass(slots=True)
class Slice:
    """The scored slice: ``chunks`` chunks of ``ctx`` tokens, ``tokens`` of them scored,
    evaluated ``batch`` tokens at a time; ``base_bytes`` is the base file's size;
    ``limited_by`` names what cut the slice short of what was asked (or is empty)."""

    ctx: int
    chunks: int
    batch: int
    tokens: int
    base_bytes: int
    limited_by: str = ""


def plan_slice(
    want_tokens: int,
    corpus_chars: int,
    n_vocab: int,
    *,
    free_disk: int,
    free_memory: int,
    model_bytes: int,
    ctx: int = DEFAULT_CTX,
    where: str = "the work folder",
) -> Slice:
    """The largest slice up to ``want_tokens`` scored tokens that the corpus, the free disk
    (less a reserve) and the available memory allow; ``SliceError`` when not one chunk fits."""
    per_chunk = scored_per_chunk(ctx)
    chunk_bytes = ctx * 4 + per_chunk * row_bytes(n_vocab)
    limits = {
        "what was asked": max(1, round(want_tokens / per_chunk)),
        "the corpus": corpus_chars // CHARS_PER_TOKEN_LOW // ctx,
        f"free disk at {where}": max(0, free_disk - DISK_RESERVE - HEADER_BYTES) // chunk_bytes,
    }
    chunks = min(limits.values())
    if chunks < 1:
        short = min(limits, key=lambda k: limits[k])
        need = base_file_bytes(n_vocab, ctx, 1) + DISK_RESERVE
        raise SliceError(
            f"not one chunk of {ctx} tokens fits: {short} is short"
            + (f" (need {need / 1e6:,.0f} MB free, {free_disk / 1e6:,.0f} MB are)" if "disk" in short else "")
        )
    batch = DEFAULT_BATCH
    budget = int(free_memory * MEMORY_SHARE) - model_bytes
    if working_bytes(n_vocab, ctx, batch) > budget:
        batch = ctx  # one chunk at a time
        if working_bytes(n_vocab, ctx, batch) > budget:
            need = working_bytes(n_vocab, ctx, batch) + model_bytes
            raise SliceError(
                f"not enough memory to score a chunk of {ctx} tokens: need about {need / 1e6:,.0f} MB, "
                f"{free_memory / 1e6:,.0f} MB are available"
            )
    limited = min(limits, key=lambda k: limits[k])
    return Slice(
        ctx=ctx,
        chunks=chunks,
        batch=batch,
        tokens=chunks * per_chunk,
        base_bytes=base_file_bytes(n_vocab, ctx, chunks),
        limited_by="" if limited == "what was asked" else limited,
    )
