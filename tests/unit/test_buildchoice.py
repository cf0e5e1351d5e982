"""Pure: which llama.cpp build configurations setup tries, in which order, with which CMake args."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from tests.conftest import need

from lanebench.engines.llamacpp.buildchoice import (
    BASE_ARGS,
    NO_AMX,
    candidates,
    cpu_flags,
    cpu_signature,
    native_enables_amx,
    user_chooses_cpu_path,
)

SPR_FLAGS = {
    "fpu",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "bmi2",
    "avx512f",
    "avx512bw",
    "amx_tile",
    "amx_int8",
}
AMX_MACROS = "#define __AVX512F__ 1\n#define __AMX_TILE__ 1\n#define __AMX_INT8__ 1\n"
EPYC_FLAGS = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"}


def names(cands: list) -> list[str]:
    return [c.name for c in cands]


def test_an_amx_vm_gets_native_then_native_without_amx_then_portable() -> None:
    cands = candidates("x86_64", SPR_FLAGS, AMX_MACROS, [])
    assert names(cands) == ["native", "native-no-amx", "portable-avx2", "portable-baseline"]
    native, no_amx, avx2, base = cands
    assert native.cmake_args == BASE_ARGS
    assert f"-DCMAKE_C_FLAGS={NO_AMX}" in no_amx.cmake_args
    assert f"-DCMAKE_CXX_FLAGS={NO_AMX}" in no_amx.cmake_args
    assert "-DGGML_NATIVE=OFF" in avx2.cmake_args and "-DGGML_AVX2=ON" in avx2.cmake_args
    assert "-DGGML_AVX=OFF" in base.cmake_args and "-DGGML_AVX2=OFF" in base.cmake_args


def test_quoted_flags_survive_llama_cpp_bins_shlex_split() -> None:
    (_, no_amx, *_) = candidates("x86_64", SPR_FLAGS, AMX_MACROS, [])
    assert tuple(shlex.split(no_amx.cmake_env)) == no_amx.cmake_args


def test_a_cpu_without_amx_skips_the_no_amx_build() -> None:
    assert names(candidates("x86_64", EPYC_FLAGS, "#define __AVX2__ 1\n", [])) == [
        "native",
        "portable-avx2",
        "portable-baseline",
    ]


def test_a_cpu_without_avx2_skips_the_avx2_build() -> None:
    assert names(candidates("x86_64", {"fpu", "sse4_2"}, "", [])) == ["native", "portable-baseline"]


def test_arm_gets_native_then_portable() -> None:
    cands = candidates("aarch64", {"fp", "asimd"}, "", [])
    assert names(cands) == ["native", "portable"]
    assert "-DGGML_NATIVE=OFF" in cands[1].cmake_args


def test_a_users_backend_args_lead_every_candidate() -> None:
    for c in candidates("x86_64", SPR_FLAGS, AMX_MACROS, ["-DGGML_CUDA=ON"]):
        assert c.cmake_args[0] == "-DGGML_CUDA=ON"
        assert set(BASE_ARGS) <= set(c.cmake_args)


@pytest.mark.parametrize(
    "user", [["-DGGML_NATIVE=OFF"], ["-DCMAKE_C_FLAGS=-march=x86-64-v3"], ["-DGGML_CPU_ALL_VARIANTS=ON"]]
)
def test_a_user_who_chose_the_cpu_path_wins_alone(user: list[str]) -> None:
    assert user_chooses_cpu_path(user)
    (only,) = candidates("x86_64", SPR_FLAGS, AMX_MACROS, user)
    assert only.name == "user" and only.cmake_args[: len(user)] == tuple(user)


def test_keys_differ_by_arguments_and_are_stable() -> None:
    a = candidates("x86_64", SPR_FLAGS, AMX_MACROS, [])
    b = candidates("x86_64", SPR_FLAGS, AMX_MACROS, ["-DGGML_VULKAN=ON"])
    assert a[0].key != b[0].key and a[0].key.startswith("native-")
    assert a[0].key == candidates("x86_64", SPR_FLAGS, AMX_MACROS, [])[0].key


def test_cpu_flags_and_signature() -> None:
    text = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 amx_tile\n\nflags\t: other\n"
    assert cpu_flags(text) == {"fpu", "avx2", "amx_tile"}
    assert cpu_flags("Features\t: fp asimd\n") == {"fp", "asimd"}
    assert cpu_flags("") == set()
    assert cpu_signature("x86_64", "Xeon", {"a", "b"}) == cpu_signature("x86_64", "Xeon", {"b", "a"})
    assert cpu_signature("x86_64", "Xeon", {"a"}) != cpu_signature("x86_64", "Xeon", {"a", "amx_tile"})


def test_native_enables_amx_reads_the_compilers_macros() -> None:
    assert native_enables_amx(AMX_MACROS)
    assert not native_enables_amx("#define __AVX512F__ 1\n")


def test_gcc_honours_no_amx_whatever_the_order_of_march_native() -> None:
    """The native-no-amx build relies on this: CMAKE_C_FLAGS come before ggml's -march=native."""
    if shutil.which("gcc") is None:
        need("gcc, the compiler setup builds llama.cpp with")
    argv = ["gcc", *NO_AMX.split(), "-march=native", "-dM", "-E", "-x", "c", "/dev/null"]
    macros = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert not native_enables_amx(macros)
    assert "__SSE2__" in macros  # the compiler did answer


def test_rpc_adds_the_rpc_backend_to_every_candidate_once() -> None:
    plain = candidates("x86_64", SPR_FLAGS, AMX_MACROS, [])
    rpc = candidates("x86_64", SPR_FLAGS, AMX_MACROS, [], rpc=True)
    assert [c.name for c in rpc] == [c.name for c in plain]
    for a, b in zip(plain, rpc, strict=True):
        assert b.cmake_args.count("-DGGML_RPC=ON") == 1 and "-DGGML_RPC=ON" not in a.cmake_args
        assert a.key != b.key  # a different wheel in the cache
    (user,) = candidates("x86_64", SPR_FLAGS, AMX_MACROS, ["-DGGML_NATIVE=OFF", "-DGGML_RPC=ON"], rpc=True)
    assert user.cmake_args.count("-DGGML_RPC=ON") == 1
