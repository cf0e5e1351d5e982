"""The job a run measures every lane with: prompt and output sizes, repetitions, concurrency."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class JobSpec:
    """The standard job: prompt and output sizes, repetitions, concurrency."""

    n_in: int = 1150
    n_out: int = 2000
    reps: int = 3
    warmup: int = 1
    aggregate: int = 2
    seed: int = 42
    target_ci: float | None = None  # stop adding reps once the 95% CI of median decode is within this share
    max_reps: int = 20
    remeasure: int | None = None  # extra reps (and batches) at most to replace busy ones; None: ``reps``
    # the operating envelope (measure.envelope): context depths (tokens of conversation the server
    # holds before each request) and concurrency levels (streams at once); both empty = the
    # standard job alone. ``budget_s``: the whole run's measuring time, which chooses repetitions
    depths: list[int] = field(default_factory=list)
    concurrency: list[int] = field(default_factory=list)
    budget_s: float | None = None

    @property
    def envelope(self) -> bool:
        """Whether the job maps the envelope (cells of depth x concurrency) instead of the
        standard job."""
        return bool(self.depths or self.concurrency)

    @property
    def depth_levels(self) -> list[int]:
        return sorted(set(self.depths)) or [0]

    @property
    def concurrency_levels(self) -> list[int]:
        return sorted(set(self.concurrency)) or [1]

    @property
    def context_per_slot(self) -> int:
        """Tokens one slot must hold: the deepest conversation, a fill's pad, the job itself."""
        return (max(self.depth_levels) + 4 if self.envelope else 0) + self.n_in + self.n_out

    @property
    def remeasure_budget(self) -> int:
        """Extra single requests (and, separately, N-slot batches) a lane may take to replace
        ones measured while the machine was busy."""
        return self.reps if self.remeasure is None else self.remeasure
