"""The embedded default: three lanes on the real Gemma 3 270M, runnable on any fresh machine."""

from __future__ import annotations

from lanebench.config.job import JobSpec
from lanebench.config.lanes import Draft, LaneSpec
from lanebench.config.models import default_model_path

DEFAULT_JOB = JobSpec(n_in=1150, n_out=200, reps=3, warmup=1, aggregate=2)
FULL_JOB = JobSpec(n_in=1150, n_out=2000, reps=3, warmup=1, aggregate=2)


def default_lanes() -> list[LaneSpec]:
    """Plain F16 KV; Q8_0 KV with flash attention; the model drafting for itself."""
    model = default_model_path()
    return [
        LaneSpec(name="Gemma 3 270M Q4_K_M, plain F16 KV", model=model, kv="f16", notes="baseline"),
        LaneSpec(
            name="Gemma 3 270M Q4_K_M, Q8_0 KV + flash attn",
            model=model,
            kv="q8_0",
            flash_attn="on",
            notes="quantised KV cache",
        ),
        LaneSpec(
            name="Gemma 3 270M Q4_K_M, self-draft B=4",
            model=model,
            draft=Draft(kind="model", block_size=4),
            notes="its own GGUF as draft: acceptance near 100%, yet slower on a CPU, where "
            "the draft costs as much as the target per token",
        ),
    ]
