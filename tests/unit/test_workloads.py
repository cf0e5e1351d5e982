"""Prompts of exactly n_in tokens, a different slice for every request."""

from __future__ import annotations

import pytest

from lanebench.errors import BadInput
from lanebench.measure.workloads import PromptSource, corpus_text

CORPUS_TOKENS = 40_000  # about what the bundled corpus tokenises to with Gemma's vocabulary


def test_the_corpus_is_bundled_text() -> None:
    text = corpus_text()
    assert len(text) > 100_000


@pytest.mark.parametrize("n_in", [1, 64, 256, 1150, 2048, 4096])
def test_every_prompt_has_exactly_n_in_tokens(n_in: int) -> None:
    src = PromptSource(list(range(CORPUS_TOKENS)), n_in)
    for i in range(50):
        p = src.prompt(i)
        assert len(p) == n_in
        assert p == list(range(src.offset(i), src.offset(i) + n_in))  # a contiguous slice


@pytest.mark.parametrize("n_in", [64, 256, 1150, 2048, 4096, 8192])
def test_offsets_differ_for_a_whole_default_job(n_in: int) -> None:
    # warm-up 1 + reps 3 + reps x aggregate 2 = 10 prompts in the default job; more for sweeps
    src = PromptSource(list(range(CORPUS_TOKENS)), n_in)
    offsets = [src.offset(i) for i in range(20)]
    assert len(set(offsets)) == len(offsets)
    assert src.prompt(0) != src.prompt(1)


def test_the_last_possible_slice_fits() -> None:
    tokens = list(range(100))
    src = PromptSource(tokens, 99)
    assert {tuple(src.prompt(i)) for i in range(4)} == {tuple(range(0, 99)), tuple(range(1, 100))}


@pytest.mark.parametrize("n_in", [100, 101, 10_000])
def test_n_in_larger_than_the_corpus(n_in: int) -> None:
    with pytest.raises(BadInput) as info:
        PromptSource(list(range(100)), n_in)
    assert str(info.value) == (f"--n-in: {n_in} tokens is more than the bundled corpus holds (100 tokens)")


@pytest.mark.parametrize("n_in", [0, -5])
def test_n_in_must_be_positive(n_in: int) -> None:
    with pytest.raises(BadInput, match=r"^--n-in: expected a positive number of tokens"):
        PromptSource(list(range(100)), n_in)


def test_offsets_differ_when_the_stride_would_divide_the_span() -> None:
    src = PromptSource(list(range(300)), 42)
    offsets = [src.offset(i) for i in range(10)]
    assert len(set(offsets)) == 10
