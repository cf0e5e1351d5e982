"""Through the real CLI: a malformed GGUF is one ``lanebench: error:`` line and exit 2, never a
traceback or a hang; markup in a valid file's strings is printed as text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli_helpers import EXITS_ON_START
from tests.fuzz.gguf_codec import ARRAY, STRING, Doc, Kv, encode
from tests.gguf_fixtures import small_set


def _gguf(path: Path, kvs: list[Kv], bo: str = "<") -> Path:
    path.write_bytes(bytes(encode(Doc(bo, 3, kvs, [], b"")).data))
    return path


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _arch(name: bytes) -> Kv:
    return Kv(b"general.architecture", STRING, name)


def _huge_big_endian(path: Path) -> Path:
    """Big-endian, with a string array whose count says 2^62 entries (gguf-py loops on it)."""
    doc = Doc(">", 3, [_arch(b"gemma4"), Kv(b"tokenizer.ggml.tokens", ARRAY, [b"a"], STRING)], [], b"")
    enc = encode(doc)
    off, width, _ = next(s for s in enc.slots if s[2] == "array count")
    enc.data[off : off + width] = (2**62).to_bytes(width, "big")
    path.write_bytes(bytes(enc.data))
    return path


MALFORMED = {
    "big-endian-huge-count": _huge_big_endian,
    "non-utf8": lambda p: _gguf(p, [_arch(b"gemma4"), Kv(b"general.name", STRING, b"\xff[/]")]),
    "block-count-array": lambda p: _gguf(p, [_arch(b"gemma4"), Kv(b"gemma4.block_count", ARRAY, [1, 2], 4)]),
    "truncated": lambda p: _raw(p, b"GGUF\x03\x00\x00\x00\x01"),
}


def _lanebench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanebench", *map(str, args)], capture_output=True, text=True, timeout=60
    )


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lanebench: error: "), lines[0]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_set(tmp_path_factory.mktemp("cli"), n_vocab=64)


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_inspect_malformed_is_one_line_exit_2(tmp_path: Path, kind: str) -> None:
    path = MALFORMED[kind](tmp_path / "bad.gguf")
    line = _one_error_line(_lanebench("gguf", "inspect", path))
    assert str(path) in line


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_check_malformed_main_is_one_line_exit_2(tmp_path: Path, kind: str, s: dict[str, Path]) -> None:
    path = MALFORMED[kind](tmp_path / "bad.gguf")
    line = _one_error_line(_lanebench("gguf", "check", "--main", path, "--head", s["head"]))
    assert line.startswith(f"lanebench: error: main model: {path}")


def test_check_malformed_head_is_a_failed_rule(tmp_path: Path, s: dict[str, Path]) -> None:
    path = _huge_big_endian(tmp_path / "bad.gguf")
    args = ("--main", s["main"], "--head", path, "--server-bin", EXITS_ON_START)
    proc = _lanebench("gguf", "check", *args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "array count" in fails[0], proc.stdout


def test_inspect_prints_markup_in_strings_literally(tmp_path: Path) -> None:
    kvs = [
        _arch(b"llama"),
        Kv(b"general.name", STRING, b"[/] [bold]x\\"),
        Kv(b"llama.[red]", STRING, b"\x1b[2J"),
    ]
    proc = _lanebench("gguf", "inspect", _gguf(tmp_path / "markup.gguf", kvs))
    assert proc.returncode == 0, proc.stderr
    assert "[/] [bold]x\\" in proc.stdout and "llama.[red]" in proc.stdout and "\\x1b[2J" in proc.stdout
