"""The job a run measures every lane with: prompt and output sizes, repetitions, concurrency."""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def remeasure_budget(self) -> int:
        """Extra single requests (and, separately, N-slot batches) a lane may take to replace
        ones measured while the machine was busy."""
        return self.reps if self.remeasure is None else self.remeasure
