"""One run configuration: every measuring option means the same in ``run``, ``sweep`` and ``tune``,
each value is validated once (one line naming the flag), and ``--json PATH`` writes that file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lanebench.cli import run_cmd, sweep_cmd
from lanebench.cli.main import app
from lanebench.config.defaults import DEFAULT_JOB, FULL_JOB
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.config.run import RunConfig
from lanebench.errors import BadInput
from lanebench.orchestration.tune import TuneReport, first_job, tune_config
from lanebench.records.lane import LaneResult
from lanebench.records.quality import QualityRecord, QualityStatus
from lanebench.records.samples import Stat

MEASURING = ("run", "sweep", "tune")
# options only some measuring commands have, and why: a command's own subject, not a measuring option
OWN = {
    "--help", "-h",
    "--resume", "--dry-run", "--markdown", "--plots",  # one run's: tune's rounds are runs of their own
    "--grid",  # sweep and tune: run has no grid
    "--goal", "--keep", "--max-kld", "--min-margin",  # tune's search
}  # fmt: skip


def options(command: str) -> dict[str, Any]:
    """Option name -> click option of a lanebench command, as the command line sees it."""
    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {name: p for p in cmd.params for name in [*p.opts, *p.secondary_opts] if name.startswith("-")}


ALL = sorted(set().union(*(options(c) for c in MEASURING)) - OWN)


def test_the_measuring_options_are_many() -> None:
    """The union below is the real option list (a typo here would make the next test vacuous)."""
    assert {"--n-in", "--quality", "--reference", "--attribute", "--target-ci", "--json"} <= set(ALL)
    assert len(ALL) >= 25


@pytest.mark.parametrize("flag", ALL)
@pytest.mark.parametrize("command", MEASURING)
def test_every_measuring_option_is_accepted_by_run_sweep_and_tune(command: str, flag: str) -> None:
    assert flag in options(command), f"lanebench {command} lacks {flag}, which another measuring command has"


@pytest.mark.parametrize("command", [*MEASURING, "quality"])
def test_json_is_a_path_everywhere(command: str) -> None:
    """``--json PATH`` writes that file in every measuring command (tune's was a stdout flag)."""
    opt = options(command)["--json"]
    assert not opt.is_flag and opt.nargs == 1  # takes a value: the file


@pytest.mark.parametrize("name", list(RunConfig.flags()))
def test_every_config_field_with_a_flag_is_an_option_of_each_command(name: str) -> None:
    flag = RunConfig.flags()[name]
    for command in MEASURING:
        assert flag.name in options(command), (command, flag.name)


# --- each option reaches the config -------------------------------------------------------------


def sample(name: str, tmp: Path) -> tuple[list[str], Any]:
    """Command-line words that set field ``name`` away from its default, and the value expected."""
    flag = RunConfig.flags()[name]
    default = RunConfig().model_dump()[name]
    if flag.invert:
        return [flag.name], False
    if isinstance(default, bool):
        return ([flag.name], True) if not default else ([f"--no-{flag.name[2:]}"], False)
    special: dict[str, tuple[list[str], Any]] = {
        "target_ci": ([flag.name, "5%"], 0.05),
        "out_dir": ([flag.name, str(tmp / "logs")], tmp / "logs"),
        "json_out": ([flag.name, str(tmp / "out.json")], tmp / "out.json"),
        "server_bin": ([flag.name, str(tmp / "llama-server")], tmp / "llama-server"),
        "load_timeout_s": ([flag.name, "12.5"], 12.5),
        "reference": ([flag.name, "ref lane"], "ref lane"),
        "db": ([flag.name, str(tmp / "r.sqlite")], str(tmp / "r.sqlite")),
        "max_reps": ([flag.name, "30"], 30),
        "aggregate": ([flag.name, "3"], 3),
        "depth": ([flag.name, "4096,0"], [0, 4096]),
        "concurrency": ([flag.name, "4,1,2"], [1, 2, 4]),
        "budget": ([flag.name, "2.5"], 2.5),
    }
    return special.get(name, ([flag.name, "7"], 7))


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[RunConfig]:
    """FAKES of what run, sweep and tune hand their config to: they keep it, measure nothing."""
    seen: list[RunConfig] = []

    def fake_execute(lanes: object, config: RunConfig, **_: object) -> None:
        seen.append(config)

    def fake_tune(lanes: object, goal: str, config: RunConfig, *_: object, **__: object) -> TuneReport:
        seen.append(config)
        return TuneReport(goal=goal)

    monkeypatch.setattr(run_cmd, "execute", fake_execute)
    monkeypatch.setattr(sweep_cmd, "execute", fake_execute)
    monkeypatch.setattr(sweep_cmd, "tune_lanes", fake_tune)
    return seen


@pytest.mark.parametrize("name", list(RunConfig.flags()))
@pytest.mark.parametrize("command", MEASURING)
def test_each_option_reaches_the_config(
    command: str, name: str, tmp_path: Path, captured: list[RunConfig]
) -> None:
    lanes = tmp_path / "l.toml"
    lanes.write_text('[[lane]]\nname = "a"\nmodel = "/m.gguf"\n')
    words, expected = sample(name, tmp_path)
    db = [] if name in ("db", "use_db") else ["--no-db"]
    out = CliRunner().invoke(app, [command, str(lanes), *words, *db])
    assert out.exit_code == 0, out.output + repr(out.exception)
    (config,) = captured
    assert getattr(config, name) == expected
    assert config.lanes_file == lanes


# --- validation: once, one line naming the flag ---------------------------------------------------

BAD = [
    (["--n-in", "0"], "--n-in: expected an integer >= 1, got 0"),
    (["--n-out", "-3"], "--n-out: expected an integer >= 1, got -3"),
    (["--reps", "0"], "--reps: expected an integer >= 1, got 0"),
    (["--warmup", "-1"], "--warmup: expected an integer >= 0, got -1"),
    (["--aggregate", "257"], "--aggregate: expected at most 256 concurrent jobs, got 257"),
    (["--aggregate", "-1"], "--aggregate: expected an integer >= 0, got -1"),
    (["--max-reps", "2"], "--max-reps: expected an integer >= 3, got 2"),
    (["--remeasure-busy", "-1"], "--remeasure-busy: expected an integer >= 0, got -1"),
    (["--target-ci", "two"], "--target-ci: expected a share such as 2% or 0.02, got 'two'"),
    (["--target-ci", "150%"], "--target-ci: expected a share such as 2% or 0.02, got 1.5"),
    (["--quality-tokens", "0"], "--quality-tokens: expected a positive number of tokens, got 0"),
    (["--attribute-reps", "0"], "--attribute-reps: expected an integer >= 1, got 0"),
    (["--load-timeout", "0"], "--load-timeout: expected a positive number of seconds, got 0.0"),
    (["--depth", "0,4k"], "--depth: expected integers separated by commas (e.g. 0,4096), got '0,4k'"),
    (["--depth", "-1"], "--depth: expected integers >= 0 separated by commas, got '-1'"),
    (["--concurrency", "0,2"], "--concurrency: expected integers >= 1 separated by commas, got '0,2'"),
    (["--budget", "0"], "--budget: expected minutes > 0, got 0"),
]


@pytest.mark.parametrize(("words", "line"), BAD, ids=[" ".join(w) for w, _ in BAD])
@pytest.mark.parametrize("command", MEASURING)
def test_a_bad_value_is_one_line_naming_the_flag(
    command: str, words: list[str], line: str, tmp_path: Path, captured: list[RunConfig]
) -> None:
    lanes = tmp_path / "l.toml"
    lanes.write_text('[[lane]]\nname = "a"\nmodel = "/m.gguf"\n')
    out = CliRunner().invoke(app, [command, str(lanes), *words, "--no-db"])
    assert isinstance(out.exception, BadInput), out.output
    assert str(out.exception) == line and out.exception.exit_code == 2
    assert captured == []  # refused before anything runs


def test_from_flags_names_the_flag_of_an_unknown_or_mistyped_value() -> None:
    with pytest.raises(BadInput, match=r"^--reps: Input should be a valid integer"):
        RunConfig.from_flags(reps="many")
    with pytest.raises(BadInput, match=r"^n_inn: Extra inputs are not permitted$"):
        RunConfig.from_flags(n_inn=5)


# --- the job and the defaults ---------------------------------------------------------------------


def test_the_job_is_the_flags_over_the_default_or_full_job() -> None:
    assert RunConfig().job == DEFAULT_JOB
    assert RunConfig(full=True).job == FULL_JOB
    c = RunConfig(full=True, n_in=64, reps=2, max_reps=9, target_ci="2%", remeasure_busy=0)
    assert c.job == JobSpec(n_in=64, n_out=2000, reps=2, target_ci=0.02, max_reps=9, remeasure=0)


def test_baseline_defaults_to_full_unless_given() -> None:
    assert RunConfig().baseline is False and RunConfig(full=True).baseline is True
    assert RunConfig(full=True, baseline=False).baseline is False
    assert RunConfig(baseline=True).baseline is True


def test_with_job_measures_another_job_and_keeps_the_rest() -> None:
    c = RunConfig(attribute=True, reps=5, max_reps=5)
    stored = JobSpec(n_in=10, n_out=4, reps=2, warmup=0, aggregate=0, seed=7)
    d = c.with_job(stored)
    assert d.job == stored and d.attribute and (d.reps, d.n_in) == (2, 10)
    assert c.job.reps == 5  # the original is left alone


def test_tune_measures_the_aggregate_only_for_its_goal_unless_asked() -> None:
    assert tune_config(RunConfig(), "decode").job.aggregate == 0
    assert tune_config(RunConfig(), "aggregate").job.aggregate == 2
    assert tune_config(RunConfig(aggregate=4), "decode").job.aggregate == 4
    with pytest.raises(BadInput, match=r"^--aggregate: --goal aggregate needs"):
        tune_config(RunConfig(aggregate=0), "aggregate")
    with pytest.raises(BadInput, match=r"^--goal: "):
        tune_config(RunConfig(), "fastest")


def test_tune_screens_without_target_ci() -> None:
    final = RunConfig(target_ci="2%").job
    assert first_job(final).target_ci is None and final.target_ci == 0.02


# --- tune --json PATH -----------------------------------------------------------------------------


def spread(name: str, mid: float, spec: LaneSpec) -> LaneResult:
    r = LaneResult(name=name, lane=spec)
    r.summary["decode_tps"] = Stat(mid, mid - 1, mid + 1, 3)
    return r


def test_tune_json_writes_the_search_to_the_file_and_keeps_stdout_human(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = {"f16": 50.0, "q8_0": 80.0}
    seen: list[RunConfig] = []

    def fake_measure(ls: list[LaneSpec], config: RunConfig, **_: object) -> SimpleNamespace:
        """A FAKE of measure_with_progress: a decode figure per kv type, no server."""
        seen.append(config)
        return SimpleNamespace(results=[spread(x.name, figures[x.kv], x) for x in ls])

    def fake_score(ls: list[LaneSpec], config: RunConfig) -> dict[str, QualityRecord]:
        """A FAKE of tune's quality scoring: every lane measured at one KLD."""
        return {x.name: QualityRecord(QualityStatus.MEASURED, kld_mean=0.01) for x in ls}

    monkeypatch.setattr(sweep_cmd, "measure_with_progress", fake_measure)
    monkeypatch.setattr(sweep_cmd, "_score", fake_score)
    lanes = tmp_path / "t.toml"
    lanes.write_text('[[lane]]\nname = "t"\nmodel = "/m.gguf"\n')
    path = tmp_path / "tune.json"
    out = CliRunner().invoke(
        app, ["tune", str(lanes), "--grid", "kv=f16,q8_0", "--no-db", "--json", str(path), "--quality"]
    )
    assert out.exit_code == 0, out.output + repr(out.exception)
    doc = json.loads(path.read_text())
    assert doc["best"] == "t [kv=q8_0]" and doc["decided_by"] == "measured" and doc["rounds"]
    assert out.output.strip().splitlines()[-1].startswith("best lane: t [kv=q8_0]")
    assert "{" not in out.output  # the JSON went to the file, not stdout
    assert doc["quality"]["t [kv=f16]"]["kld_mean"] == 0.01  # --quality: scored once, first
    assert "  quality  t [kv=f16]: mean KLD 0.0100 nats/token" in out.output
    assert seen and not any(c.quality for c in seen)  # rounds never score quality themselves


# --- the lanes file's [job] table: the job the lanes are measured with, under the flags ------------
JOB_FILE = (
    "[job]\ndepth = [0, 2048]\nconcurrency = [1, 2]\nbudget = 4.5\nn_in = 64\nfull = true\n\n"
    '[[lane]]\nname = "a"\nmodel = "/m.gguf"\n'
)


@pytest.mark.parametrize("command", MEASURING)
def test_the_lanes_files_job_table_sets_the_job(
    command: str, tmp_path: Path, captured: list[RunConfig]
) -> None:
    lanes = tmp_path / "l.toml"
    lanes.write_text(JOB_FILE)
    out = CliRunner().invoke(app, [command, str(lanes), "--no-db"])
    assert out.exit_code == 0, out.output + repr(out.exception)
    (config,) = captured
    job = config.job
    assert (job.depths, job.concurrency, job.budget_s, job.n_in) == ([0, 2048], [1, 2], 270.0, 64)
    assert config.full and config.baseline and job.n_out == FULL_JOB.n_out  # full = true, as --full


@pytest.mark.parametrize("command", MEASURING)
def test_a_flag_wins_over_the_lanes_files_job(
    command: str, tmp_path: Path, captured: list[RunConfig]
) -> None:
    lanes = tmp_path / "l.toml"
    lanes.write_text(JOB_FILE)
    words = ["--depth", "4096", "--n-in", "32", "--no-baseline", "--no-db"]
    out = CliRunner().invoke(app, [command, str(lanes), *words])
    assert out.exit_code == 0, out.output + repr(out.exception)
    (config,) = captured
    assert (config.job.depths, config.job.concurrency, config.job.n_in) == ([4096], [1, 2], 32)
    assert config.full and not config.baseline


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ("depth = [0, -5]", "[job]: key 'depth': expected integers >= 0 separated by commas, got [0, -5]"),
        ("depths = [0]", "[job]: unknown key 'depths' (expected one of n_in, n_out, reps,"),
        ("budget = 0", "[job]: key 'budget': expected minutes > 0, got 0"),
        ("reps = 'three'", "[job]: key 'reps': Input should be a valid integer"),
    ],
)
def test_a_bad_job_table_is_one_line_naming_the_file_and_key(table: str, line: str, tmp_path: Path) -> None:
    lanes = tmp_path / "l.toml"
    lanes.write_text(f'[job]\n{table}\n\n[[lane]]\nname = "a"\nmodel = "/m.gguf"\n')
    out = CliRunner().invoke(app, ["run", str(lanes), "--no-db", "--dry-run"])
    assert out.exit_code != 0 and isinstance(out.exception, (BadInput, SystemExit)), out.output
    text = out.output + str(out.exception)
    assert f"{lanes}: {line}" in text, text
