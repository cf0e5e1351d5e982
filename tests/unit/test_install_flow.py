"""install-server's choice, with fakes for the slow parts (build, unpack, smoke test, pip).

Fault injection only: which candidate is built next after a death by a signal, what is
remembered, when nothing is rebuilt. The real flow (a real build dying by SIGILL on an AMX VM,
then the no-AMX build passing) is what ``scripts/setup.sh`` prints; see docs/install.md.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lanebench.engines.llamacpp import install
from lanebench.engines.llamacpp.smoke import SmokeResult
from lanebench.errors import NotFound

AMX_VM = install.Machine(
    "x86_64", "Intel Xeon", {"avx2", "fma", "f16c", "bmi2", "amx_tile"}, "#define __AMX_TILE__ 1"
)


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Fakes: builds are files named after the config; the smoke test's verdict is per config."""
    state: dict[str, Any] = {"built": [], "installed": [], "verdict": {}, "installed_bin": None}
    monkeypatch.setattr(install, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(install, "default_model_path", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(install, "this_machine", lambda: AMX_VM)
    monkeypatch.setattr(install, "packaged_server_bin", lambda: state["installed_bin"])
    monkeypatch.delenv("CMAKE_ARGS", raising=False)

    def build_wheel(cfg: Any, source: str, console: Console) -> Path:
        state["built"].append(cfg.name)
        return tmp_path / f"{cfg.name}.whl"

    def smoke(binary: Path, model: Path) -> SmokeResult:
        ok, sig = state["verdict"].get(binary.stem, (True, None))
        return SmokeResult(ok=ok, binary=str(binary), message="fake verdict", signal=sig, decode_tps=1.0)

    monkeypatch.setattr(install, "build_wheel", build_wheel)
    monkeypatch.setattr(install, "stage", lambda wheel: wheel)
    monkeypatch.setattr(install, "smoke_test", smoke)
    monkeypatch.setattr(install, "_pip_install", lambda wheel: state["installed"].append(wheel.stem))
    return state


def run(**kw: Any) -> tuple[dict[str, Any], str]:
    buf = io.StringIO()
    result = install.install_server(console=Console(file=buf, width=300), **kw)
    return result, buf.getvalue()


def test_sigill_makes_way_for_the_next_build_and_says_why(fake: dict[str, Any]) -> None:
    fake["verdict"]["native"] = (False, "SIGILL")
    result, out = run()
    assert fake["built"] == ["native", "native-no-amx"] and fake["installed"] == ["native-no-amx"]
    assert result["config"] == "native-no-amx"
    assert "the 'native' build died by SIGILL here; rebuilding as 'native-no-amx'" in out
    assert install.load_choice()["config"] == "native-no-amx"  # type: ignore[index]


def test_a_machine_without_the_problem_builds_once(fake: dict[str, Any]) -> None:
    result, _ = run()
    assert fake["built"] == ["native"] and result["config"] == "native"


def test_a_failure_that_is_not_a_signal_stops_with_the_reason(fake: dict[str, Any]) -> None:
    fake["verdict"]["native"] = (False, None)
    with pytest.raises(NotFound, match="'native' build failed its smoke test, not by a signal"):
        run()
    assert fake["built"] == ["native"] and fake["installed"] == []


def test_every_build_dying_is_an_error_naming_them(fake: dict[str, Any]) -> None:
    for name in ("native", "native-no-amx", "portable-avx2", "portable-baseline"):
        fake["verdict"][name] = (False, "SIGILL")
    with pytest.raises(NotFound, match="tried native, native-no-amx, portable-avx2, portable-baseline"):
        run()


def test_an_installed_build_that_runs_is_kept(fake: dict[str, Any], tmp_path: Path) -> None:
    fake["installed_bin"] = tmp_path / "installed.bin"
    result, out = run()
    assert result["action"] == "kept" and fake["built"] == []
    assert "smoke test of the installed llama-server" in out


def test_the_remembered_choice_is_tried_first_in_a_new_environment(fake: dict[str, Any]) -> None:
    fake["verdict"]["native"] = (False, "SIGILL")
    run()
    fake["built"].clear()
    fake["installed"].clear()
    result, _ = run()  # nothing installed (a new venv), same machine: no SIGILL build again
    assert fake["built"] == ["native-no-amx"] and result["config"] == "native-no-amx"


def test_an_installed_build_without_the_users_backend_is_rebuilt(
    fake: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake["installed_bin"] = tmp_path / "installed.bin"
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_VULKAN=ON")
    result, _ = run()
    assert result["action"] == "installed" and fake["built"] == ["native"]
    assert install.load_choice()["cmake_args"][0] == "-DGGML_VULKAN=ON"  # type: ignore[index]


@pytest.mark.parametrize(("args", "rpc"), [((), True), (("--no-rpc",), False), (("--rpc",), True)])
def test_install_server_command_builds_the_rpc_backend_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], rpc: bool
) -> None:
    """One build serves README's two commands: the CLI asks for the RPC backend by default."""
    from typer.testing import CliRunner

    from lanebench.cli.main import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(install, "install_server", lambda **kw: seen.update(kw) or {"ok": True})
    result = CliRunner().invoke(app, ["install-server", *args])
    assert result.exit_code == 0, result.output
    assert seen["rpc"] is rpc
