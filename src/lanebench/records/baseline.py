"""The kernel view's record: llama-bench's figures for a lane."""

from __future__ import annotations

from dataclasses import dataclass, field

from lanebench.records.busy import LoadRecord
from lanebench.records.codec import Record


@dataclass(slots=True)
class BaselineRecord(Record):
    """llama-bench's figures for a lane (tokens per second, mean ± sd over repetitions).

    Prefill is llama-bench's ``pp n_prompt @ d prefill_depth`` and decode its ``tg n_gen @ d
    decode_depth``: the server prefills ``n_in`` tokens after ``depth`` tokens of context and
    decodes after ``depth + n_in``, so the kernel view runs at those depths (two llama-bench
    runs, ``argv`` and ``decode_argv``). A record from before depths were kept reads as depth 0,
    which is what it ran at."""

    argv: list[str] = field(default_factory=list)  # the prefill run
    prefill_tps: float | None = None
    prefill_sd: float | None = None
    decode_tps: float | None = None
    decode_sd: float | None = None
    prefill_samples: list[float] = field(default_factory=list)  # each repetition's rate (samples_ts)
    decode_samples: list[float] = field(default_factory=list)
    n_prompt: int = 0
    n_gen: int = 0
    reps: int = 0
    seconds: float | None = None
    note: str = ""
    prefill_depth: int = 0  # tokens of context before the prompt (llama-bench -d, its n_depth)
    decode_depth: int = 0  # tokens of context before the first generated token
    decode_argv: list[str] = field(default_factory=list)  # the decode run
    load: LoadRecord | None = None  # what else ran on the machine meanwhile

    @property
    def measured(self) -> bool:
        """llama-bench ran (a record with only a note says why it did not)."""
        return bool(self.n_prompt or self.n_gen)

    @property
    def prefill_test(self) -> str:
        """llama-bench's own name of the prefill test, e.g. ``pp1150 @ d0``."""
        return f"pp{self.n_prompt} @ d{self.prefill_depth}"

    @property
    def decode_test(self) -> str:
        """llama-bench's own name of the decode test, e.g. ``tg200 @ d1150``."""
        return f"tg{self.n_gen} @ d{self.decode_depth}"
