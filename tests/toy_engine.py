"""A toy engine, added the way docs/engines.md says: one new module, one class.

Its "server" is tests/fakes/fake_openai_server.py, a FAKE OpenAI-compatible server that streams
tokens at a rate it is told (``--rate``) in chunks of ``--per-chunk`` tokens; lanebench starts
it as it starts llama-server (own process group, readiness at ``/v1/models``, log, stop). Beside
the required parts (plan, argv, request, reader) it has three optional capabilities
(``engines.hooks``): a kernel view, a build fingerprint and one attribution suspect ("chunking":
the lane with one token per chunk). The others keep their defaults, which say "not available for
engine 'toy'". Importing this module registers it (``LANEBENCH_ENGINES=tests.toy_engine`` does
that for ``lanebench run``).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.engines.base import (
    Engine,
    LanePlan,
    PlanContext,
    Prompt,
    Request,
    StreamReader,
    Turn,
    needed_ctx,
)
from lanebench.engines.hooks import KernelView, Suspects, SuspectVariant, Unavailable
from lanebench.engines.openai import OpenAIReader, completion_body
from lanebench.engines.registry import register
from lanebench.records.baseline import BaselineRecord

FAKE = Path(__file__).resolve().parent / "fakes" / "fake_openai_server.py"
RATE = 2000.0  # tokens per second the fake is told to make
VERSION = "toy 0.1"


def per_chunk(lane: LaneSpec) -> int:
    """Tokens per chunk the lane asks of the fake (``extra_args = ["--per-chunk", "K"]``)."""
    args = list(lane.extra_args)
    return int(args[args.index("--per-chunk") + 1]) if "--per-chunk" in args else 1


@register("toy")
class Toy(Engine):
    ready_path = "/v1/models"

    def plan(self, lane: LaneSpec, ctx: PlanContext) -> LanePlan:
        build_info = {"engine": self.name, "version": VERSION, "rate": RATE}
        plan = LanePlan(lane, self, needed_ctx(ctx.job, lane.slots), build=str(FAKE), build_info=build_info)
        plan.argv_preview = plan.argv(0)
        return plan

    def argv(self, plan: LanePlan, port: int) -> list[str]:
        return [sys.executable, str(FAKE), str(port), "tokens", "--rate", str(RATE), *plan.lane.extra_args]

    def request(self, plan: LanePlan, prompt: Prompt, turn: Turn) -> Request:
        body = completion_body("fake-model", prompt, turn.n_out, turn.seed)
        return Request("/v1/completions", body, turn.n_in, turn.n_out)

    def reader(self) -> StreamReader:
        return OpenAIReader()

    # --- optional capabilities ---------------------------------------------------------------
    def kernel_view(
        self, plan: LanePlan, job: JobSpec, reps: int, depth: int = 0
    ) -> KernelView | Unavailable:
        """Not a measurement: the rate the fake is told to stream at, under the view's key (the
        same for every toy lane, so a run measures it once)."""
        argv = ["toy-kernels", "--rate", str(RATE), "-n", str(job.n_out), "-r", str(reps)]

        def measure(log_path: Path, load_timeout_s: float, retry: bool) -> BaselineRecord:
            return BaselineRecord(
                argv, n_prompt=job.n_in, n_gen=job.n_out, reps=reps, note="toy: the fake's rate"
            )

        notes = [f"toy: {per_chunk(plan.lane)} token(s) per chunk"]
        return KernelView(" ".join(argv), notes, measure)

    def fingerprint(self, build: str, build_info: dict[str, Any]) -> dict[str, Any]:
        return {"engine": self.name, "server": FAKE.name, "version": VERSION}

    def attribution_suspects(self, plan: LanePlan) -> Suspects | Unavailable:
        if per_chunk(plan.lane) == 1:
            return Suspects(skipped=[["chunking", "the lane sends one token per chunk already"]])
        lane = plan.lane.model_copy(update={"extra_args": ["--per-chunk", "1"]})
        variant = replace(plan, lane=lane)
        variant.argv_preview = variant.argv(0)
        change = ["--per-chunk", "1"]
        return Suspects([SuspectVariant("chunking", "several tokens per chunk", change, variant)])
