"""Pure: how an engine's end is described (signals named, causes and advice, log lines picked)."""

from __future__ import annotations

import pytest

from lanebench.server.exitcause import describe_exit, last_cause_line, mem_available_bytes, signal_name


@pytest.mark.parametrize(
    ("code", "name"),
    [(-4, "SIGILL"), (132, "SIGILL"), (-9, "SIGKILL"), (137, "SIGKILL"), (-11, "SIGSEGV"), (-6, "SIGABRT")],
)
def test_signal_names_from_popen_and_shell_codes(code: int, name: str) -> None:
    assert signal_name(code) == name


@pytest.mark.parametrize("code", [0, 1, 2, 127, 128])
def test_ordinary_exits_are_not_signals(code: int) -> None:
    assert signal_name(code) is None


def test_sigill_names_the_cause_and_the_fix() -> None:
    msg = describe_exit(-4, "loading\n", phase="while loading")
    assert msg.startswith("llama-server was killed by SIGILL (illegal instruction) while loading: ")
    assert "CPU instructions this machine will not run" in msg
    assert "lanebench install-server --rebuild" in msg and "--server-bin" in msg
    assert "\n" not in msg


def test_sigkill_gives_free_memory_and_model_size() -> None:
    msg = describe_exit(
        -9, "", phase="mid-run", model_bytes=14_400_000_000, mem_available_bytes=3_200_000_000
    )
    assert "killed by SIGKILL mid-run, most likely by the kernel's OOM killer" in msg
    assert "3.2 GB of memory available now, model file(s) 14.4 GB" in msg


def test_sigkill_with_unknown_figures_says_so() -> None:
    assert "unknown of memory available now, model file(s) unknown" in describe_exit(-9, "")


def test_segfault_quotes_the_assert_not_the_last_line() -> None:
    log = "load_tensors: ok\nggml.c:12: GGML_ASSERT(n > 0) failed\nstack trace:\n#0 0x1234 in ggml_abort\n"
    assert (
        describe_exit(-11, log) == "llama-server crashed with SIGSEGV: ggml.c:12: GGML_ASSERT(n > 0) failed"
    )


def test_abort_falls_back_to_an_error_line_then_the_last_line() -> None:
    assert last_cause_line("a\nerror: failed to open x\nb\n") == "error: failed to open x"
    assert last_cause_line("a\nb\n") == "b"
    assert last_cause_line("") == "no output"
    assert "terminate called after throwing" in describe_exit(
        -6, "x\nterminate called after throwing an instance of 'std::runtime_error'\ny\n"
    )


def test_ordinary_exit_keeps_its_code() -> None:
    assert describe_exit(1, "error: bad model\n", phase="while loading") == (
        "llama-server exited with code 1 while loading: error: bad model"
    )


def test_mem_available_from_meminfo() -> None:
    text = "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   2000000 kB\n"
    assert mem_available_bytes(text) == 2_000_000 * 1024
    assert mem_available_bytes("MemTotal: 1 kB\n") is None


def test_the_assert_above_a_backtrace_is_the_cause_not_a_frame() -> None:
    # the tail of b11434's llama-server with -sm tensor on two H200s (recorded, paths shortened)
    log = (
        "0.02.145.308 I srv          init: preserve_reasoning kwarg: not supported by template\n"
        "/src/ggml-backend-meta.cpp:547: GGML_ASSERT(src_ss[0].axis != GGML_BACKEND_SPLIT_AXIS_0) failed\n"
        "/build/bin/libggml-base.so.0(ggml_abort+0x15b)[0x7f7ea4da005b]\n"
        "/build/bin/llama-server(+0x7b3c5)[0x5584db25b3c5]\n"
    )
    assert last_cause_line(log).endswith("GGML_ASSERT(src_ss[0].axis != GGML_BACKEND_SPLIT_AXIS_0) failed")
    frames_only = "loading\n/build/bin/llama-bench(+0x5e835)[0x5646c1fce835]\n"
    assert last_cause_line(frames_only) == "loading"
