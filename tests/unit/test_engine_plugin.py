"""Adding an engine is one module (tests/toy_engine.py, as docs/engines.md shows): importing it
registers the class, and planning, measuring and every optional step (kernel view, quality,
memory, fingerprint, attribution) ask the engine, never its name. The toy's server is a FAKE
(tests/fakes/fake_openai_server.py); no real engine runs here."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.cli_helpers import lanes_file, run_cli

from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.engines import registry
from lanebench.engines.base import Engine, LanePlan
from lanebench.engines.hooks import KernelView, Unavailable
from lanebench.engines.llamacpp.engine import LlamaCpp
from lanebench.errors import BadInput
from lanebench.measure.job import RunState
from lanebench.orchestration.attribute_step import attribution_for
from lanebench.orchestration.baseline_step import baseline_for
from lanebench.orchestration.fingerprint_step import Build, FingerprintSink
from lanebench.orchestration.plan import new_run, plan_lanes
from lanebench.orchestration.quality_step import quality_lanes
from lanebench.records.baseline import BaselineRecord
from lanebench.records.lane import LaneResult

MODULE = "tests.toy_engine"
ROOT = Path(__file__).resolve().parents[2]
JOB = JobSpec(n_in=16, n_out=24, reps=2, warmup=1, aggregate=0)


def _forget() -> None:
    registry.unregister("toy")
    sys.modules.pop(MODULE, None)


@pytest.fixture
def toy() -> Iterator[ModuleType]:
    """The toy module, imported (so registered) for one test only."""
    _forget()
    yield importlib.import_module(MODULE)
    _forget()


def lanes() -> list[LaneSpec]:
    return [
        LaneSpec(name="chunky", engine="toy", extra_args=["--per-chunk", "4"]),
        LaneSpec(name="plain", engine="toy"),
    ]


def test_importing_the_module_registers_it(toy: ModuleType) -> None:
    assert isinstance(registry.get_engine("toy"), toy.Toy) and "toy" in registry.known()
    with pytest.raises(ValueError, match=r"engine name 'toy' is registered twice"):

        @registry.register("toy")
        class Again(toy.Toy):
            pass


def test_a_users_module_is_found_by_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    _forget()
    try:
        with pytest.raises(BadInput, match=r"unknown engine 'toy' \(known: "):
            registry.get_engine("toy")
        monkeypatch.setenv(registry.ENV_VAR, f" {MODULE} ,")
        assert registry.get_engine("toy").name == "toy"
        monkeypatch.setenv(registry.ENV_VAR, "tests.no_such_engine")
        with pytest.raises(
            BadInput,
            match=r"^LANEBENCH_ENGINES: cannot import engine module 'tests.no_such_engine' \(ModuleNot",
        ):
            registry.get_engine("llama.cpp")
    finally:
        _forget()


def test_each_optional_step_asks_the_engine(
    toy: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = RunConfig(out_dir=tmp_path, baseline=True, attribute=True).with_job(JOB)
    chunky, plain = plan_lanes(lanes(), opts)  # the fit check asks too: no estimate, no notes
    assert chunky.fit_notes == [] and chunky.argv_preview[3:] == [
        "tokens",
        "--rate",
        "2000.0",
        "--per-chunk",
        "4",
    ]
    runs: list[str] = []
    kernel_view = toy.Toy.kernel_view

    def counted(self: Engine, plan: LanePlan, job: JobSpec, reps: int, depth: int = 0) -> Any:
        view = kernel_view(self, plan, job, reps, depth)
        assert isinstance(view, KernelView)
        measure = view.measure
        view.measure = lambda *a: (runs.append(plan.lane.name), measure(*a))[1]
        return view

    monkeypatch.setattr(toy.Toy, "kernel_view", counted)
    cache: dict[str, BaselineRecord] = {}
    first, second = baseline_for(chunky, opts, cache), baseline_for(plain, opts, cache)
    assert runs == ["chunky"]  # one key: measured once, shared
    assert first is not None and second is not None and first.argv[0] == "toy-kernels"
    assert first.note == "toy: 4 token(s) per chunk; toy: the fake's rate"
    assert second.note == "toy: 1 token(s) per chunk; toy: the fake's rate"
    (q, _) = quality_lanes([chunky, plain])
    assert q.server_bin is None and q.unavailable.startswith("engine 'toy': no quality tool")
    rec = attribution_for(
        plain, LaneResult(name="plain", lane=plain.lane), opts, RunState(), {}, tmp_path.joinpath
    )
    assert rec is not None and rec.arms == [] and rec.note == "no suspect applies to this lane on this build"
    assert rec.skipped == [["chunking", "the lane sends one token per chunk already"]]
    assert not any(tmp_path.iterdir())  # nothing started, nothing logged
    assert isinstance(plain.engine.memory_fit(plain), Unavailable)


class _Fingerprints:
    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], dict[str, Any]] = {}

    def has_fingerprint(self, run: Any, kind: str, key: str) -> bool:
        return (kind, key) in self.kept

    def add_fingerprint(self, run: Any, kind: str, key: str, data: dict[str, Any]) -> None:
        self.kept[kind, key] = data


def test_the_build_is_fingerprinted_by_its_engine(toy: ModuleType, tmp_path: Path) -> None:
    plans = plan_lanes(lanes(), RunConfig(out_dir=tmp_path).with_job(JOB))
    store = _Fingerprints()
    sink = FingerprintSink(store, [Build(p.engine, p.build, p.build_info) for p in plans])
    sink.run_started(new_run(RunConfig(out_dir=tmp_path).with_job(JOB)))
    builds = {key: data for (kind, key), data in store.kept.items() if kind == "build"}
    assert builds == {
        str(toy.FAKE): {"engine": "toy", "server": "fake_openai_server.py", "version": "toy 0.1"}
    }


def test_a_toy_lane_is_planned_and_measured_by_lanebench_run(tmp_path: Path) -> None:
    """The whole run through the CLI, the module found through LANEBENCH_ENGINES."""
    body = '[[lane]]\nname = "chunky"\nengine = "toy"\nextra_args = ["--per-chunk", "4"]\n'
    body += '\n[[lane]]\nname = "plain"\nengine = "toy"\n'
    path = lanes_file(tmp_path, body)
    env = {
        "LANEBENCH_ENGINES": MODULE,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    job = ("--n-in", "16", "--n-out", "24", "--reps", "2", "--warmup", "1", "--aggregate", "0")
    asked = ("--baseline", "--attribute", "--attribute-reps", "2", "--quality", "--remeasure-busy", "0")
    proc, left = run_cli(
        tmp_path, "run", str(path), *job, *asked, "--json", str(tmp_path / "out.json"), env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert left == []
    chunky, plain = json.loads((tmp_path / "out.json").read_text())["lanes"]
    for lane in (chunky, plain):
        assert lane["status"] != "failed", lane["error"]
        assert [s["stream_tokens"] for s in lane["samples"] if s["kind"] == "single"] == [24, 24]
        assert lane["baseline"]["argv"][0] == "toy-kernels"
        assert lane["memory"]["peak_rss"] > 0 and lane["memory"]["groups"] == 1
        assert (
            "engine 'toy': no memory breakdown from its log (lanebench reads llama.cpp's)"
            in lane["memory"]["notes"]
        )
        assert lane["quality"]["status"] == "unavailable"
        assert lane["quality"]["note"].startswith("engine 'toy': no quality tool")
        assert lane["placement"] is None and lane["backends"] == []
    arms = chunky["attribution"]["arms"]
    assert [a["name"] for a in arms] == ["control", "chunking", "control_after"]
    assert arms[1]["argv"][-2:] == ["--per-chunk", "1"]
    assert all(s["ok"] for a in arms for s in a["samples"]) and all(len(a["samples"]) == 3 for a in arms)
    assert plain["attribution"]["arms"] == [] and plain["attribution"]["skipped"][0][0] == "chunking"


def test_a_fork_of_llama_cpp_under_its_own_name_keeps_its_quality_tool(tmp_path: Path) -> None:
    """Quality asks the engine's ``quality_tool``, not whether its name is 'llama.cpp'."""

    class Fork(LlamaCpp):
        name = "ik_llama.cpp"

    server, model = tmp_path / "llama-server", tmp_path / "m.gguf"
    plan = LanePlan(LaneSpec(name="fork"), Fork(), 512, str(server), server_bin=server, model=model)
    (q,) = quality_lanes([plan])
    assert (q.server_bin, q.model, q.unavailable) == (server, model, "")
