"""The attribution step's planning (no server starts): which servers an experiment runs, the
job they run, and when there is no experiment at all."""

from __future__ import annotations

from pathlib import Path

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.engines.base import LanePlan
from lanebench.engines.hooks import Suspects
from lanebench.engines.llamacpp.dialect import parse_dialect
from lanebench.engines.llamacpp.engine import LlamaCpp
from lanebench.engines.openai import OpenAI
from lanebench.measure.job import RunState
from lanebench.orchestration.attribute_step import attribution_for, experiment_job
from lanebench.records.lane import LaneResult, LaneStatus

HELP = Path(__file__).resolve().parents[1] / "fixtures" / "help"
BIN, MODEL = Path("/opt/llama/bin/llama-server"), Path("/models/m.gguf")
JOB = JobSpec(n_in=256, n_out=32, reps=3, warmup=0, aggregate=2)


def plan(lane: LaneSpec) -> LanePlan:
    dialect = parse_dialect((HELP / "b11434.version").read_text(), (HELP / "b11434.help").read_text())
    return LanePlan(lane, LlamaCpp(), 512, str(BIN), server_bin=BIN, dialect=dialect, model=MODEL)


def test_each_variant_is_the_lanes_argv_with_one_switch() -> None:
    base = plan(LaneSpec(name="L", slots=1, threads=2))
    found = base.engine.attribution_suspects(base)
    assert isinstance(found, Suspects)
    control = base.argv(0)
    for v in found.variants:
        assert v.plan.argv_preview == [*control, *v.change]
    assert [v.name for v in found.variants] == ["prompt_cache", "idle_slots", "ctx_checkpoints", "samplers"]
    assert found.skipped == [["cache_reuse", "the lane does not enable it (--cache-reuse 0)"]]


def test_the_experiment_runs_the_lanes_job_without_batches() -> None:
    opts = RunConfig(out_dir=Path("/tmp"), attribute=True, attribute_reps=4).with_job(JOB)
    job = experiment_job(opts)
    assert (job.n_in, job.n_out, job.reps, job.warmup, job.aggregate) == (256, 32, 4, 1, 0)


def test_no_experiment_when_not_asked_or_failed_and_a_note_for_other_engines(tmp_path: Path) -> None:
    lane = LaneSpec(name="L")
    result = LaneResult(name="L", lane=lane)
    asked = RunConfig(out_dir=tmp_path, attribute=True).with_job(JOB)

    def log(label: str) -> Path:
        return tmp_path / label

    assert (
        attribution_for(plan(lane), result, RunConfig(out_dir=tmp_path).with_job(JOB), RunState(), {}, log)
        is None
    )
    failed = LaneResult(name="L", lane=lane, status=LaneStatus.FAILED)
    assert attribution_for(plan(lane), failed, asked, RunState(), {}, log) is None
    attached = LanePlan(LaneSpec(name="L", engine="openai", url="http://127.0.0.1:9"), OpenAI(), 0, "url")
    rec = attribution_for(attached, result, asked, RunState(), {}, log)
    assert rec is not None and rec.arms == [] and "no attribution" in rec.note
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing logged
