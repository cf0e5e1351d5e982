#!/usr/bin/env python3
"""Fake llama-server for fault injection: dies by the signal named in ``FAKE_SIGNAL``.

It answers ``--version``/``--help`` exactly like the real b11434 (the recorded fixture), so
lanebench's dialect probe accepts it; started to serve, it prints a few log lines like a real
server (for SIGSEGV/SIGABRT a ``GGML_ASSERT`` line, as llama.cpp prints before aborting) and
then kills itself with ``FAKE_SIGNAL`` (e.g. SIGILL, SIGKILL, SIGSEGV) while "loading".
"""

import os
import signal
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "help"


def main() -> None:
    if sys.argv[1:2] == ["--version"]:
        sys.stdout.write((FIXTURES / "b11434.version").read_text())
        return
    if sys.argv[1:2] == ["--help"]:
        sys.stdout.write((FIXTURES / "b11434.help").read_text())
        return
    sig = signal.Signals[os.environ.get("FAKE_SIGNAL", "SIGILL")]
    print("fake llama-server: loading model", flush=True)
    if sig in (signal.SIGSEGV, signal.SIGABRT):
        print("/src/ggml/src/ggml.c:1234: GGML_ASSERT(ctx->mem_buffer != NULL) failed", flush=True)
        print("fake llama-server: aborting", flush=True)
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(sig, signal.SIG_DFL)  # Python's own handlers must not intercept it
    os.kill(os.getpid(), sig)


if __name__ == "__main__":
    main()
