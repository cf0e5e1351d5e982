"""The standard job's prompts: exactly ``n_in`` tokens cut from a bundled corpus.

Each request gets a different slice (so the prefix cache never flatters prefill), and prompts
are sent as token ids, so the engine sees exactly ``n_in`` tokens.
"""

from __future__ import annotations

import math
from importlib.resources import files

from lanebench.errors import BadInput


def corpus_text() -> str:
    """The bundled corpus: Python reference-manual prose and standard-library code."""
    return files("lanebench").joinpath("data/corpus/corpus.txt").read_text(encoding="utf-8")


class PromptSource:
    """Slices of a tokenised corpus; slice ``i`` starts at a different offset for every ``i``."""

    def __init__(self, tokens: list[int], n_in: int) -> None:
        if n_in < 1:
            raise BadInput(f"--n-in: expected a positive number of tokens, got {n_in}")
        if len(tokens) < n_in + 1:
            raise BadInput(
                f"--n-in: {n_in} tokens is more than the bundled corpus holds ({len(tokens)} tokens)"
            )
        self.tokens = tokens
        self.n_in = n_in
        self._span = len(tokens) - n_in
        # a stride that is not a divisor of the span walks through many distinct offsets
        stride = max(1, min(n_in, self._span // 7) | 1)
        while math.gcd(stride, self._span + 1) > 1:  # coprime: offsets repeat only after span+1 slices
            stride += 2
        self._stride = stride

    def offset(self, i: int) -> int:
        return (i * self._stride) % (self._span + 1)

    def prompt(self, i: int) -> list[int]:
        """Token ids of slice ``i``: exactly ``n_in`` of them."""
        start = self.offset(i)
        return self.tokens[start : start + self.n_in]


CHARS_PER_TOKEN = 4  # a rough English/code average; the engine's own count is checked after


class TextPromptSource:
    """Slices of the corpus text of about ``n_in`` tokens, for engines that cannot tokenise for
    us (Ollama, an OpenAI server without ``/tokenize``). The engine's reported prompt length is
    what counts; a lane whose prompts were not ``n_in`` tokens is flagged."""

    def __init__(self, text: str, n_in: int) -> None:
        if n_in < 1:
            raise BadInput(f"--n-in: expected a positive number of tokens, got {n_in}")
        self.text = text
        self.n_chars = n_in * CHARS_PER_TOKEN
        if len(text) < self.n_chars + 1:
            raise BadInput(f"--n-in: {n_in} tokens is more than the bundled corpus holds as text")
        self._span = len(text) - self.n_chars
        self._stride = max(1, min(self.n_chars, self._span // 7) | 1)

    def prompt(self, i: int) -> str:
        start = (i * self._stride) % (self._span + 1)
        return self.text[start : start + self.n_chars]


class Conversations:
    """The envelope's prompts (``measure.envelope``): each stream has a conversation of its own, the
    corpus's tokens read from an offset of the stream's (wrapping around, so any depth can be
    asked for), a few pad tokens that end its fill, and fresh turns of ``n_in`` tokens.

    A turn never starts with the token the stream's slot holds right after its conversation
    (``avoid``): the server's cached prefix is then exactly the conversation, so its own
    ``cache_n`` can confirm the reuse token for token."""

    def __init__(self, tokens: list[int], n_in: int, streams: int, pad: int) -> None:
        if len(tokens) < n_in + pad + 1:
            raise BadInput(
                f"--n-in: {n_in} tokens is more than the bundled corpus holds ({len(tokens)} tokens)"
            )
        self.tokens, self.n_in, self.n_pad = tokens, n_in, pad
        self.offsets = [i * len(tokens) // max(streams, 1) for i in range(max(streams, 1))]
        self._turns = PromptSource(tokens, n_in)

    def _span(self, start: int, n: int) -> list[int]:
        L = len(self.tokens)
        out: list[int] = []
        while len(out) < n:
            i = (start + len(out)) % L
            out += self.tokens[i : i + n - len(out)]
        return out

    def prefix(self, stream: int, depth: int) -> list[int]:
        """The first ``depth`` tokens of the stream's conversation."""
        return self._span(self.offsets[stream % len(self.offsets)], depth)

    def pad(self, stream: int) -> list[int]:
        """Tokens a fill ends with: the corpus's last ones, shifted per stream."""
        return self._span(len(self.tokens) - self.n_pad - stream % len(self.offsets), self.n_pad)

    def turn(self, stream: int, i: int, avoid: int | None = None) -> list[int]:
        """Fresh turn ``i`` of ``n_in`` tokens, not starting with token ``avoid``."""
        start = self._turns.offset(i) + self.offsets[stream % len(self.offsets)]
        turn = self._span(start, self.n_in)
        for shift in range(1, len(self.tokens)):
            if turn[0] != avoid:
                break
            turn = self._span(start + shift, self.n_in)
        return turn
