"""Bad files never crash: each class the fuzz campaign found ends in one clean BadInput line
naming the file and the field (or is accepted because it is valid)."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.gguf_fixtures import small_set, tokenizer_gguf

from lanebench.config.inputs import MAX_DEPTH
from lanebench.config.lanesfile import MAX_LINES, load_lanes
from lanebench.config.run import RunConfig
from lanebench.engines.llamacpp import engine as llamacpp
from lanebench.engines.llamacpp.dialect import parse_dialect
from lanebench.errors import BadInput
from lanebench.gguf import hf, shapes
from lanebench.gguf.convert import ConvertOptions, convert_head
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.st_io import Checkpoint
from lanebench.gguf.synth import fit_vocab, rope_freqs, synth_assistant, synth_main
from lanebench.gguf.writer import write_gguf
from lanebench.orchestration import plan as runner


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_set(tmp_path_factory.mktemp("robust"))


def _convert(s: dict[str, Path], hf_dir: Path, tmp_path: Path) -> str:
    with pytest.raises(BadInput) as info:
        convert_head(ConvertOptions(hf_dir, s["main"], tmp_path / "out.gguf"))
    assert not (tmp_path / "out.gguf").exists()
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


def _copy(s: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(s["hf"], tmp_path / "hf"))


# ---- config.json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON (nested too deeply)"),
        ('{"a": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}", f"nested more than {MAX_DEPTH}"),
        ('{"a": ' + "9" * 5000 + "}", "not valid JSON (Exceeds the limit"),
        ('{"a": ' + "9" * 40 + "}", "an integer of 133 bits"),
        ("[1, 2]", "expected a JSON object"),
    ],
    ids=["deep-nesting", "nesting-past-the-limit", "5000-digit-int", "133-bit-int", "not-an-object"],
)
def test_parser_limits_in_config_are_bad_input(
    s: dict[str, Path], tmp_path: Path, text: str, expected: str
) -> None:
    d = _copy(s, tmp_path)
    (d / "config.json").write_text(text)
    message = _convert(s, d, tmp_path)
    assert message.startswith(f"{d / 'config.json'}: ") and expected in message


def _edit_config(d: Path, edit: dict[str, Any], text: bool = True) -> None:
    cfg = json.loads((d / "config.json").read_text())
    (cfg["text_config"] if text else cfg).update(edit)
    (d / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    ("edit", "text", "expected"),
    [
        ({"hidden_size": "64"}, True, "field 'text_config.hidden_size' is '64', expected an integer"),
        ({"hidden_size": True}, True, "field 'text_config.hidden_size' is True, expected an integer"),
        ({"hidden_size": 1 << 40}, True, "field 'text_config.hidden_size' is 1099511627776, expected"),
        ({"num_hidden_layers": -3}, True, "field 'text_config.num_hidden_layers' is -3, expected"),
        ({"layer_types": ["sliding_attention", 7]}, True, "field 'text_config.layer_types[1]' is 7"),
        ({"layer_types": "full_attention"}, True, "field 'text_config.layer_types' is 'full_attention'"),
        ({"rms_norm_eps": float("nan")}, True, "field 'text_config.rms_norm_eps' is nan, expected a number"),
        (
            {"rope_parameters": [1]},
            True,
            "field 'text_config.rope_parameters' is [1], expected a JSON object",
        ),
        ({"attention_k_eq_v": "yes"}, True, "field 'text_config.attention_k_eq_v' is 'yes', expected true"),
        (
            {"backbone_hidden_size": [128]},
            False,
            "field 'backbone_hidden_size' is [128], expected an integer",
        ),
        ({"text_config": "x"}, False, "field 'text_config' is 'x', expected a JSON object"),
        ({"architectures": [["x"]]}, False, "field 'architectures' is [['x']], expected a list of class"),
        ({"tie_word_embeddings": 1}, False, "field 'tie_word_embeddings' is 1, expected true or false"),
    ],
)
def test_wrong_typed_config_field_is_named(
    s: dict[str, Path], tmp_path: Path, edit: dict[str, Any], text: bool, expected: str
) -> None:
    d = _copy(s, tmp_path)
    _edit_config(d, edit, text)
    assert expected in _convert(s, d, tmp_path)


def test_partial_rotary_factor_1e9_is_refused_by_field(s: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(s, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["text_config"]["rope_parameters"]["full_attention"]["partial_rotary_factor"] = 1e9
    (d / "config.json").write_text(json.dumps(cfg))
    message = _convert(s, d, tmp_path)
    assert (
        "field 'text_config.rope_parameters.full_attention.partial_rotary_factor' is 1000000000.0" in message
    )
    assert "expected a number in [0, 1]" in message


def test_rope_freqs_never_allocates_past_the_head() -> None:
    assert rope_freqs(16, 0.25).tolist() == [1.0, 1.0] + [float(np.float32(1e30))] * 6
    with pytest.raises(ValueError, match="outside"):
        rope_freqs(16, 1e9)


# ---- safetensors -------------------------------------------------------------------------


def _rewrite_header(path: Path, edit: Any) -> None:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n :])


NORM = "model.norm.weight"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda h: h[NORM].update(data_offsets=[0, 1 << 40]), f"tensor {NORM}: field 'data_offsets' is"),
        (lambda h: h[NORM].update(data_offsets=[-2, 2]), f"tensor {NORM}: field 'data_offsets' is [-2, 2]"),
        (lambda h: h[NORM].update(data_offsets=[0, 2]), f"tensor {NORM}: field 'data_offsets' spans 2 bytes"),
        (lambda h: h[NORM].update(shape=[64, 1 << 40]), f"tensor {NORM}: field 'data_offsets' spans"),
        (lambda h: h[NORM].update(shape=["64"]), f"tensor {NORM}: field 'shape' is ['64']"),
        (lambda h: h[NORM].update(dtype=["BF16"]), f"tensor {NORM}: field 'dtype' is ['BF16']"),
        (lambda h: h[NORM].update(dtype="I64"), f"tensor {NORM}: field 'data_offsets' spans"),
        (lambda h: h.update({NORM: 5}), f"tensor {NORM}: entry is 5"),
        (lambda h: h.update({"bad\nname": h.pop(NORM)}), "tensor name 'bad\\nname' is not"),
    ],
    ids=["past-eof", "negative", "shorter-than-shape", "huge-shape", "str-dim", "list-dtype", "dtype-size",
         "not-an-object", "newline-in-name"],
)  # fmt: skip
def test_bad_safetensors_header_names_the_tensor_and_field(
    s: dict[str, Path], tmp_path: Path, edit: Any, expected: str
) -> None:
    d = _copy(s, tmp_path)
    _rewrite_header(d / "model.safetensors", edit)
    message = _convert(s, d, tmp_path)
    assert message.startswith(f"{d / 'model.safetensors'}: ") and expected in message


def test_float_weight_stored_as_integers_is_refused(s: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(s, tmp_path)
    _rewrite_header(d / "model.safetensors", lambda h: h[NORM].update(dtype="I16"))
    assert f"tensor {NORM} has dtype I16, expected BF16 or F16 or F32" in _convert(s, d, tmp_path)


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1 << 62, "header length 4611686018427387904"), (0, "header: not valid JSON")],
)
def test_header_length_is_bounded_by_the_file(
    s: dict[str, Path], tmp_path: Path, length: int, expected: str
) -> None:
    d = _copy(s, tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", length) + data[8:])
    assert expected in _convert(s, d, tmp_path)


def test_bad_index_names_the_shard_field(s: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(s, tmp_path)
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {NORM: "../../etc/passwd"}}))
    assert f"field 'weight_map.'{NORM}'' is '../../etc/passwd'" in _convert(s, d, tmp_path)
    (d / "model.safetensors.index.json").write_text('{"weight_map": ' + "[" * 5000 + "]" * 5000 + "}")
    assert "not valid JSON (nested too deeply)" in _convert(s, d, tmp_path)


def test_close_with_a_live_view_does_not_raise(s: dict[str, Path]) -> None:
    ck = Checkpoint(s["hf"])
    view = ck.raw(NORM)
    ck.close()  # was BufferError: cannot close exported pointers exist
    assert view.shape == (64,)


# ---- lanes files -------------------------------------------------------------------------


def _lanes_problems(tmp_path: Path, text: str) -> tuple[Path, list[str]]:
    path = tmp_path / "lanes.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as info:
        load_lanes(path)
    return path, str(info.value).splitlines()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("x = " + "[" * 100_000 + "]" * 100_000, "not valid TOML (nested too deeply)"),
        ("[" + "[" * 3000 + "a" + "]" * 3000 + "]", "not valid TOML ("),
        ("x = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels"),
        ("x = " + "9" * 5000, "not valid TOML (Exceeds the limit"),
        ("x = 0x" + "f" * 5000, "an integer of 20000 bits (more than 64)"),
    ],
    ids=["deep-array", "deep-table-header", "past-the-limit", "5000-digit-int", "huge-hex-int"],
)
def test_toml_parser_limits_are_one_line(tmp_path: Path, body: str, expected: str) -> None:
    path, lines = _lanes_problems(tmp_path, f'{body}\n[[lane]]\nname = "a"\n')
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and expected in lines[0]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("model", '"a\\u0000b.gguf"', "field 'model': Value error, 'a\\x00b.gguf' contains a NUL byte"),
        ("model", '"' + "m" * 5000 + '"', "field 'model': Value error, 'mmmmmmmmmmmmmm"),
        ("server_bin", '"/' + "d/" * 2100 + 'x"', "longer than the system allows (4095 bytes"),
        (
            "model",
            '"~lanebench-no-such-user/x"',
            "field 'model': Value error, '~lanebench-no-such-user/x': cannot",
        ),
        (
            "draft",
            '{ kind = "mtp", path = "h\\u0000" }',
            "field 'draft.path': Value error, 'h\\x00' contains",
        ),
        ("model", "7", "field 'model': Value error, expected a path (a string), got 7"),
        ("ctx", str(1 << 40), "field 'ctx': Input should be less than or equal to 2147483647"),
        ("threads", "9223372036854775807", "field 'threads': Input should be less than or equal to 65536"),
        ("env", '{ "A=B" = "1" }', "field 'env.A=B.[key]': Value error, 'A=B' is not an environment"),
        ("extra_args", '["--x\\u0000"]', "field 'extra_args.0': Value error, '--x\\x00' contains a NUL"),
        ("notes", '"\\u0000"', "field 'notes': Value error, '\\x00' contains a NUL byte"),
        ("sweep", "{ a = [1] }", "field 'sweep.a': Value error, expected a grid value"),
    ],
)
def test_bad_lane_value_names_lane_and_field(tmp_path: Path, field: str, value: str, expected: str) -> None:
    path, lines = _lanes_problems(tmp_path, f'[[lane]]\nname = "a"\n{field} = {value}\n')
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: lane 'a': ") and expected in lines[0]
    assert len(lines[0]) < 400


def test_name_that_cannot_name_a_log_file_is_refused(tmp_path: Path) -> None:
    _, lines = _lanes_problems(tmp_path, f'[[lane]]\nname = "{"n" * 500}"\n')
    assert len(lines) == 1 and "'name': Value error, expected printable text of 1 to 128 bytes" in lines[0]
    _, lines = _lanes_problems(tmp_path, '[[lane]]\nname = "two\\nlines"\n')
    assert len(lines) == 1 and "lane 'two\\nlines': field 'name'" in lines[0]


def test_mistyped_key_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    _, lines = _lanes_problems(tmp_path, '[[lane]]\nname = "a"\n"bad\\nkey" = 1\n')
    path = tmp_path / "lanes.toml"
    assert lines == [f"{path}: lane 'a': field ''bad\\nkey'': Extra inputs are not permitted"]


def test_nobody_home_path_is_refused_when_planned(s: dict[str, Path], tmp_path: Path) -> None:
    """``~nobody/x`` expands where the user exists; where it points at nothing the plan says so."""
    path = tmp_path / "lanes.toml"
    path.write_text(f'[defaults]\nserver_bin = "{s["main"]}"\n[[lane]]\nname = "a"\nmodel = "~nobody/x"\n')
    try:
        lanes = load_lanes(path)
    except BadInput as exc:  # no user 'nobody' on this machine
        assert str(exc).startswith(f"{path}: lane 'a': field 'model': Value error, '~nobody/x': cannot")
        return
    opts = RunConfig(out_dir=tmp_path)
    with pytest.raises(BadInput, match=r"^lane 'a': field '(model|server_bin)': "):
        runner.plan_lanes(lanes, opts)


def test_bad_defaults_value_is_one_line_for_3000_lanes(tmp_path: Path) -> None:
    lanes = "".join(f'[[lane]]\nname = "lane {i}"\n' for i in range(3000))
    path, lines = _lanes_problems(tmp_path, f'[defaults]\nslots = 0\nmodel = "a\\u0000"\n{lanes}')
    assert lines == [
        f"{path}: [defaults]: field 'model': Value error, 'a\\x00' contains a NUL byte",
        f"{path}: [defaults]: field 'slots': Input should be greater than or equal to 1",
    ]


def test_missing_default_model_is_one_plan_line_for_3000_lanes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    help_dir = Path(__file__).resolve().parents[1] / "fixtures" / "help"
    build = parse_dialect(*((help_dir / f"b11434.{x}").read_text() for x in ("version", "help")))
    monkeypatch.setattr(llamacpp, "probe", lambda binary: build)
    lanes = "".join(f'[[lane]]\nname = "lane {i}"\n' for i in range(3000))
    path = tmp_path / "lanes.toml"
    path.write_text(f'[defaults]\nmodel = "missing.gguf"\nserver_bin = "{sys.executable}"\n{lanes}')
    opts = RunConfig(out_dir=tmp_path)
    with pytest.raises(BadInput) as info:
        runner.plan_lanes(load_lanes(path), opts)
    missing = tmp_path / "missing.gguf"
    assert str(info.value) == f"lane 'lane 0' (and 2999 more lanes): field 'model': {missing} does not exist"


def test_lane_overriding_a_bad_default_is_fine_and_lane_errors_stay_per_lane(tmp_path: Path) -> None:
    body = '[defaults]\nkv = "q 8"\ndraft = { kind = "model", block_size = 1 }\n'
    body += '[[lane]]\nname = "a"\nkv = "q8_0"\ndraft = { block_size = 4 }\n'
    body += '[[lane]]\nname = "b"\nslots = 0\n'
    path, lines = _lanes_problems(tmp_path, body)
    assert lines == [
        f"{path}: [defaults]: field 'kv': Value error, expected a cache type such as f16, q8_0, q4_0, "
        "got 'q 8'",
        f"{path}: [defaults]: field 'draft.block_size': Input should be greater than or equal to 2",
        f"{path}: lane 'b': field 'slots': Input should be greater than or equal to 1",
    ]


def test_many_problems_are_capped(tmp_path: Path) -> None:
    lanes = "".join(f'[[lane]]\nname = "lane {i}"\nslots = 0\n' for i in range(3000))
    path, lines = _lanes_problems(tmp_path, lanes)
    assert len(lines) == MAX_LINES + 1
    assert lines[0] == f"{path}: lane 'lane 0': field 'slots': Input should be greater than or equal to 1"
    assert lines[-1] == f"... and {3000 - MAX_LINES} more problems"


def test_empty_path_means_the_default(tmp_path: Path) -> None:
    path = tmp_path / "lanes.toml"
    path.write_text('[[lane]]\nname = "a"\nmodel = ""\ndraft = { kind = "model", path = "" }\n')
    (lane,) = load_lanes(path)
    assert lane.model is None and lane.draft is not None and lane.draft.path is None


def test_nul_in_the_lanes_file_path_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read lanes file"):
        load_lanes(tmp_path / "a\0b.toml")


# ---- synth --tokenizer-from ----------------------------------------------------------------


def test_synth_assistant_takes_the_tokenizers_vocab(tmp_path: Path) -> None:
    main_shape, head_shape = shapes.preset("tiny")  # vocab 262,144 as preset
    tok = tokenizer_gguf(tmp_path / "tok.gguf", 300)
    synth_main(tmp_path / "main.gguf", main_shape, tok)
    synth_assistant(tmp_path / "hf", main_shape, head_shape, "Gemma4AssistantForCausalLM", tokenizer_from=tok)
    assert hf.vocab_size(hf.read_config(tmp_path / "hf")) == 300
    r = convert_head(ConvertOptions(tmp_path / "hf", tmp_path / "main.gguf", tmp_path / "head.gguf"))
    assert r.out_bytes > 0
    assert open_gguf(r.out).vocab_hash() == open_gguf(tmp_path / "main.gguf").vocab_hash()
    assert fit_vocab(main_shape, tok).vocab == 300 and fit_vocab(main_shape, None) == main_shape


def test_tokenizer_without_tokens_is_refused(s: dict[str, Path], tmp_path: Path) -> None:
    main_shape, _ = shapes.preset("tiny")
    empty = tmp_path / "no-vocab.gguf"
    write_gguf(empty, "llama", [], [])
    with pytest.raises(BadInput, match=r"no tokenizer\.ggml\.tokens"):
        fit_vocab(main_shape, empty)
    assert np.isfinite(rope_freqs(8, 1.0)).all()


def test_synth_cli_then_convert_head_cli_agree_on_a_small_tokenizer(tmp_path: Path) -> None:
    """Through the CLI: `synth --tokenizer-from` writes both halves with the tokenizer's vocabulary,
    and `convert-head` accepts the pair (it refused it when the assistant kept 262,144)."""
    import subprocess
    import sys

    tok = tokenizer_gguf(tmp_path / "tok.gguf", 300)
    lb = [sys.executable, "-m", "lanebench"]
    out = tmp_path / "synth"
    made = subprocess.run(
        [*lb, "synth", "-o", str(out), "--tokenizer-from", str(tok)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert hf.vocab_size(hf.read_config(out / "assistant-hf")) == 300
    conv = subprocess.run(
        [
            *lb,
            "convert-head",
            str(out / "assistant-hf"),
            "--main",
            str(out / "main.gguf"),
            "-o",
            str(tmp_path / "h.gguf"),
        ],
        capture_output=True,
        text=True,
    )
    assert conv.returncode == 0, conv.stderr
    assert open_gguf(tmp_path / "h.gguf").vocab_hash() == open_gguf(out / "main.gguf").vocab_hash()
