"""Bad GGUF files never crash: one small crafted file per class of root cause the fuzzer found.

Each malformed file ends in one ``BadInput`` line naming the file, the field and what was
expected; valid-but-odd files (big-endian, empty arrays, markup in strings) are accepted.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFValueType as GT
from rich.console import Console
from tests.fuzz.gguf_codec import ARRAY, STRING, Doc, Encoded, Kv, TensorEntry, decode, encode
from tests.gguf_fixtures import f32_tensor, rewrite, set_key, small_set

from lanebench.cli.gguf_cmd import render_check, render_inspect
from lanebench.errors import BadInput
from lanebench.gguf.check import check_draft
from lanebench.gguf.inspect import inspect_gguf
from lanebench.gguf.reader import open_gguf
from lanebench.gguf.translate import copy_plans, field_kvs, translate
from lanebench.gguf.writer import KV, TensorPlan, array, u32, write_gguf

U32, I32, F32, BOOL, U64 = 4, 5, 6, 7, 10


def kv(key: str | bytes, vtype: int, value: object, sub: int = 0) -> Kv:
    return Kv(key.encode() if isinstance(key, str) else key, vtype, value, sub)


def text(key: str | bytes, value: str | bytes) -> Kv:
    return kv(key, STRING, value.encode() if isinstance(value, str) else value)


def base(arch: str = "llama") -> list[Kv]:
    return [text("general.architecture", arch), kv(f"{arch}.block_count", U32, 2)]


def doc(kvs: list[Kv], tensors: list[TensorEntry] | None = None, data: bytes = b"", bo: str = "<") -> Doc:
    return Doc(bo, 3, kvs, tensors or [], data)


def write(tmp_path: Path, d: Doc | Encoded | bytes, name: str = "x.gguf") -> Path:
    raw = d if isinstance(d, bytes) else bytes((encode(d) if isinstance(d, Doc) else d).data)
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def overwrite(d: Doc, what: str, value: int, nth: int = 0) -> bytes:
    """``d`` encoded, with its ``nth`` count/length/tag called ``what`` set to ``value``."""
    enc = encode(d)
    off, width, _ = [s for s in enc.slots if s[2] == what][nth]
    enc.data[off : off + width] = value.to_bytes(width, "little" if d.byte_order == "<" else "big")
    return bytes(enc.data)


def bad(path: Path, *fragments: str) -> str:
    with pytest.raises(BadInput) as info:
        open_gguf(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for f in fragments:
        assert f in msg, msg
    return msg


# ---- counts bounded by the file's size, both byte orders --------------------------------


@pytest.mark.parametrize("bo", ["<", ">"])
@pytest.mark.parametrize("sub", [STRING, I32])
def test_huge_array_count_fails_fast_in_either_byte_order(tmp_path: Path, bo: str, sub: int) -> None:
    values = [b"a", b"b"] if sub == STRING else [1, 2]
    d = doc([*base(), kv("tokenizer.ggml.tokens", ARRAY, values, sub)], bo=bo)
    path = write(tmp_path, overwrite(d, "array count", 2**62))
    start = time.monotonic()
    bad(path, "key 'tokenizer.ggml.tokens'", "array count: expected at most", "found 4611686018427387904")
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    ("what", "value", "fragment"),
    [
        ("kv_count", 2**64 - 1, "kv_count: expected at most"),
        ("tensor_count", 2**40, "tensor_count: expected at most"),
        ("key length", 2**63, "key #0 (at byte 24) length: expected at most"),
        ("scalar length", 2**63 - 1, "key 'general.architecture' (at byte 24) length"),
        ("version", 1, "version: expected 2 or 3"),
        ("value type", 99, "type: expected a GGUF value type 0..12, found 99"),
    ],
)
def test_header_counts_and_tags(tmp_path: Path, what: str, value: int, fragment: str) -> None:
    bad(write(tmp_path, overwrite(doc(base()), what, value)), "truncated or corrupt", fragment)


def test_big_endian_file_reads_like_little_endian(tmp_path: Path) -> None:
    kvs = [*base(), kv("tokenizer.ggml.tokens", ARRAY, [b"a", b"[/]"], STRING), kv("x.f", F32, 0.5)]
    data = np.arange(32, dtype=">f4").tobytes()
    d = doc(kvs, [TensorEntry(b"w", [32], 0, 0)], data, bo=">")
    g = open_gguf(write(tmp_path, d))
    assert (g.byte_order, g.arch, g.arch_key("block_count"), g.get("x.f")) == (">", "llama", 2, 0.5)
    assert g.tokens() == ["a", "[/]"]
    assert g.tensors["w"].shape == (32,) and g.tensor_data("w").tobytes() == data


# ---- the layout rules llama.cpp applies -------------------------------------------------

Edit = Callable[[Doc], None]


def _tensor_doc() -> Doc:
    return doc(base(), [TensorEntry(b"w", [32], 0, 0)], b"\0" * 128)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda d: d.kvs.append(d.kvs[0]),
            "key 'general.architecture' (at byte 102): expected each key once",
        ),
        (
            lambda d: d.tensors.append(d.tensors[0]),
            "tensor 'w' (at byte 135): expected each tensor name once",
        ),
        (
            lambda d: setattr(d.tensors[0], "dims", [32, 1000]),
            "tensor 'w' (at byte 102) data: expected 128000",
        ),
        (lambda d: setattr(d.tensors[0], "offset", 4), "offset: expected a multiple of the alignment 32"),
        (lambda d: setattr(d.tensors[0], "dims", [1] * 5), "n_dims: expected at most 4, found 5"),
        (lambda d: setattr(d.tensors[0], "ttype", 4), "type: expected a ggml tensor type, found 4"),
        (
            lambda d: setattr(d, "tensors", [TensorEntry(b"w", [33], 8, 0)]),
            "ne0: expected a multiple of 32 (the Q8_0 block), found 33",
        ),
        (lambda d: setattr(d.tensors[0], "name", b"n" * 64), "expected a name of at most 63 bytes"),
        (
            lambda d: d.kvs.append(kv("general.alignment", U32, 48)),
            "'general.alignment': expected a uint32 power",
        ),
        (
            lambda d: d.kvs.append(kv("x", ARRAY, [], ARRAY)),
            "key 'x' (at byte 102): expected an array of numbers",
        ),
    ],
)
def test_layout_rules(tmp_path: Path, edit: Edit, fragment: str) -> None:
    d = _tensor_doc()
    edit(d)
    bad(write(tmp_path, d), fragment)


@pytest.mark.parametrize(
    ("kvs", "fragment"),
    [
        ([text("x", b"ok\xff")], "key 'x' (at byte 102): expected UTF-8 text, found byte 0xff at position 2"),
        ([text(b"k\xc3", "v")], "key #2 (at byte 102): expected UTF-8 text"),
        (
            [kv("tokenizer.ggml.tokens", ARRAY, [b"a", b"\xed\xa0\x80"], STRING)],
            "key 'tokenizer.ggml.tokens' (at byte 102) entry 1: expected UTF-8 text, found byte 0xed",
        ),
    ],
)
def test_strings_must_be_utf8(tmp_path: Path, kvs: list[Kv], fragment: str) -> None:
    bad(write(tmp_path, doc([*base(), *kvs])), fragment)


# ---- metadata types and ranges, checked once when a file is read ------------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ([kv("llama.block_count", ARRAY, [1, 2], U32)], "'llama.block_count': expected an integer 0..512"),
        (
            [kv("llama.block_count", U32, 2**31)],
            "'llama.block_count': expected an integer 0..512, found uint32",
        ),
        ([kv("llama.embedding_length", I32, -1)], "expected an integer 0..2147483647, found int32 -1"),
        ([kv("llama.rope.freq_base", F32, float("nan"))], "'llama.rope.freq_base': expected a finite float"),
        ([kv("llama.attention.head_count_kv", ARRAY, [1], U32)], "expected 2 entries (one per block_count"),
        ([kv("llama.attention.sliding_window_pattern", ARRAY, [1, 0, 1], BOOL)], "expected 2 entries"),
        (
            [kv("llama.feed_forward_length", ARRAY, [1, -5], I32)],
            "expected integers 0..2147483647, found -5..1",
        ),
        ([text("tokenizer.ggml.bos_token_id", "2")], "'tokenizer.ggml.bos_token_id': expected an integer"),
        ([kv("tokenizer.ggml.add_bos_token", U32, 1)], "'tokenizer.ggml.add_bos_token': expected a bool"),
        (
            [kv("tokenizer.ggml.tokens", ARRAY, [1, 2], U32)],
            "expected an array of strings, found an array of 2",
        ),
        (
            [
                kv("tokenizer.ggml.tokens", ARRAY, [b"a"], STRING),
                kv("tokenizer.ggml.scores", ARRAY, [0.0] * 2, F32),
            ],
            "'tokenizer.ggml.scores': expected 1 entries (one per token), found 2 entries",
        ),
    ],
)
def test_metadata_types_and_ranges(tmp_path: Path, extra: list[Kv], fragment: str) -> None:
    names = {k.key for k in extra}
    bad(write(tmp_path, doc([k for k in base() if k.key not in names] + extra)), fragment)


def test_architecture_with_control_characters(tmp_path: Path) -> None:
    msg = bad(write(tmp_path, doc([text("general.architecture", "a\nb")])), "without control characters")
    assert "'a\\nb'" in msg


# ---- check, translate and the writer on odd but readable heads --------------------------


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_set(tmp_path_factory.mktemp("robust"), n_vocab=64)


def test_check_head_with_a_scalar_pattern_is_a_rule_not_a_crash(s: dict[str, Path], tmp_path: Path) -> None:
    key = "gemma4-assistant.attention.sliding_window_pattern"
    head = rewrite(s["head"], tmp_path / "h.gguf", kv_edit=set_key(key, u32(key, 6)))
    lines = check_draft(s["main"], head, "mtp")
    assert "sliding_window_pattern: expected 2 booleans (one per block_count layer), found 6" in lines


def test_check_main_with_one_kv_head_entry_is_bad_input(s: dict[str, Path], tmp_path: Path) -> None:
    key = "gemma4.attention.head_count_kv"
    main = rewrite(s["main"], tmp_path / "m.gguf", kv_edit=set_key(key, array(key, [1], GT.UINT32)))
    with pytest.raises(
        BadInput, match=r"main model: .*m\.gguf: key 'gemma4.attention.head_count_kv': expected 2 entries"
    ):
        check_draft(main, s["head"], "mtp")


def test_translate_refuses_a_head_that_already_holds_the_target_name(
    s: dict[str, Path], tmp_path: Path
) -> None:
    shape = tuple(reversed(open_gguf(s["head"]).tensors["nextn.pre_projection.weight"].shape))
    head = _add_tensor(s["head"], tmp_path / "h.gguf", f32_tensor("mtp.pre_projection.weight", shape))
    with pytest.raises(
        BadInput, match=r"'nextn\.pre_projection\.weight' and 'mtp\.pre_projection\.weight' would both be"
    ):
        translate(head, "atomic", tmp_path / "a.gguf")


def test_translate_refuses_two_keys_that_become_one(s: dict[str, Path], tmp_path: Path) -> None:
    head = rewrite(
        s["head"], tmp_path / "h.gguf", kv_edit=lambda kvs: [*kvs, u32("gemma4_assistant.context_length", 1)]
    )
    with pytest.raises(BadInput, match=r"would both be named 'gemma4_assistant\.context_length'"):
        translate(head, "atomic", tmp_path / "a.gguf")


def test_translate_keeps_empty_arrays_and_byte_order(s: dict[str, Path], tmp_path: Path) -> None:
    head = rewrite(s["head"], tmp_path / "h.gguf", kv_edit=lambda kvs: [*kvs, array("x.empty", [], GT.INT32)])
    d = decode(head.read_bytes())
    assert d is not None
    d.byte_order = ">"
    be = write(tmp_path, d, "be.gguf")
    translate(be, "atomic", tmp_path / "a.gguf")
    translate(tmp_path / "a.gguf", "upstream", tmp_path / "u.gguf")
    a, u, orig = open_gguf(tmp_path / "a.gguf"), open_gguf(tmp_path / "u.gguf"), open_gguf(be)
    assert (a.byte_order, a.get("x.empty"), u.get("x.empty")) == (">", [], [])
    assert u.arch_key("block_count") == orig.arch_key("block_count") == 2
    for name in orig.tensors:
        assert np.array_equal(u.tensor_data(name), orig.tensor_data(name)), name


def _add_tensor(src: Path, dst: Path, plan: TensorPlan) -> Path:
    g = open_gguf(src)
    write_gguf(dst, g.arch, field_kvs(g), [*copy_plans(g, lambda n: n), plan])
    return dst


# ---- rich markup and control characters in a file's strings -----------------------------


def _render(fn: Callable[[Console], None]) -> str:
    out = io.StringIO()
    fn(Console(file=out, width=300))
    return out.getvalue()


def test_markup_in_strings_is_printed_literally(tmp_path: Path) -> None:
    kvs = [*base(), text("general.name", "[/] [bold red]x\\"), text("llama.[/]", "\x1b[2J")]
    info = inspect_gguf(write(tmp_path, doc(kvs)))
    out = _render(lambda c: render_inspect(info, c))
    assert "[/] [bold red]x\\" in out and "llama.[/]" in out and "\\x1b[2J" in out and "\x1b" not in out


def test_markup_in_check_lines_is_printed_literally(s: dict[str, Path], tmp_path: Path) -> None:
    head = rewrite(s["head"], tmp_path / "h.gguf", arch="[/]")
    lines = check_draft(s["main"], head, "mtp")
    assert lines[0].startswith("architecture: expected ") and lines[0].endswith("found '[/]'")
    out = _render(lambda c: render_check(lines, "mtp", "build: [b]x[/b]", c))
    assert "found '[/]'" in out and "build: [b]x[/b]" in out


def test_writer_round_trips_an_empty_array(tmp_path: Path) -> None:
    write_gguf(tmp_path / "e.gguf", "llama", [KV("x", [], GT.ARRAY, GT.INT32)], [])
    g = open_gguf(tmp_path / "e.gguf")
    assert g.get("x") == [] and g.field_type("x") == (GT.ARRAY, GT.INT32)
    assert struct.unpack_from("<I", (tmp_path / "e.gguf").read_bytes(), 4) == (3,)
