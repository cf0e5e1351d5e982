"""Safetensors checkpoints: memory-mapped reads one tensor at a time, streamed writes.

The safetensors numpy backend cannot decode BF16 (numpy has no bfloat16), and real Gemma
checkpoints are BF16. So this module reads the documented layout itself (an 8-byte
little-endian header length, a JSON header of ``dtype``/``shape``/``data_offsets``, then the
data) and maps the data with ``mmap``; pages of a finished tensor are handed back to the OS.
Sharded checkpoints (``model.safetensors.index.json``) are supported.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from lanebench.config.inputs import Fields, load_json, read_limited, show
from lanebench.errors import BadInput

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DTYPES: dict[str, np.dtype] = {
    "BF16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_MAX_HEADER = 100 << 20  # bytes of header JSON (and of an index file)
_MAX_DIMS = 8
_MAX_NAME = 512  # characters of a tensor name


@dataclass(frozen=True, slots=True)
class StTensor:
    """Where one tensor lives: file, dtype name, shape (numpy order), byte range."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def _tensor_name(path: Path, name: str) -> str:
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise BadInput(f"{path}: tensor name {show(name)} is not 1 to {_MAX_NAME} printable characters")
    return name


def _tensor(path: Path, name: str, meta: Any, base: int, size: int) -> StTensor:
    """One header entry, checked: dtype known, shape of non-negative ints, and data_offsets
    inside the file spanning exactly shape x dtype bytes."""
    where = f"{path}: tensor {_tensor_name(path, name)}"
    if not isinstance(meta, dict):
        raise BadInput(f"{where}: entry is {show(meta)}, expected an object with dtype, shape, data_offsets")
    dtype, shape, offsets = meta.get("dtype"), meta.get("shape"), meta.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise BadInput(f"{where}: field 'dtype' is {show(dtype)}, expected one of {', '.join(DTYPES)}")
    if not _ints(shape, _MAX_DIMS) or any(d < 0 for d in shape):
        raise BadInput(f"{where}: field 'shape' is {show(shape)}, expected up to {_MAX_DIMS} sizes >= 0")
    if not _ints(offsets, 2) or len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1] <= size - base:
        raise BadInput(
            f"{where}: field 'data_offsets' is {show(offsets)}, expected [begin, end] with "
            f"0 <= begin <= end <= {size - base} (the data bytes after the header)"
        )
    b, e = offsets
    want = math.prod(shape) * DTYPES[dtype].itemsize
    if e - b != want:
        raise BadInput(
            f"{where}: field 'data_offsets' spans {e - b} bytes, but shape {shape} of {dtype} is {want} bytes"
        )
    return StTensor(name, path, dtype, tuple(shape), base + b, base + e)


def _ints(value: Any, max_len: int) -> TypeGuard[list[int]]:
    """True for a list of at most ``max_len`` JSON integers (booleans are not integers)."""
    return (
        isinstance(value, list)
        and len(value) <= max_len
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    )


def _read_header(path: Path) -> tuple[dict[str, StTensor], int]:
    """The tensors of one safetensors file, every field checked against the file's size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise BadInput(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n > min(_MAX_HEADER, size - 8):
                raise BadInput(
                    f"{path}: not a safetensors file (header length {n}, but {size - 8} bytes follow it)"
                )
            data = f.read(n)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read it ({exc.strerror or exc})") from None
    header = load_json(data, f"{path}: header")
    if not isinstance(header, dict):
        raise BadInput(f"{path}: header is {show(header)}, expected a JSON object")
    base = 8 + n
    out = {
        name: _tensor(path, name, meta, base, size) for name, meta in header.items() if name != "__metadata__"
    }
    return out, base


def _read_index(index: Path) -> list[str]:
    """Shard file names from ``model.safetensors.index.json``, each a plain name in the folder."""
    weight_map = Fields(load_json(read_limited(index, _MAX_HEADER, "the index"), str(index)), str(index))
    files = weight_map.table("weight_map", required=True).data
    for tensor, shard in files.items():
        if not isinstance(shard, str) or not shard.isprintable() or "/" in shard or shard in ("", ".", ".."):
            raise BadInput(
                f"{index}: field 'weight_map.{show(tensor)}' is {show(shard)}, expected a file in the folder"
            )
    return sorted(set(files.values()))


def checkpoint_files(hf_dir: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder (index layout or single/any files)."""
    index = hf_dir / INDEX_FILE
    if index.is_file():
        files = [hf_dir / f for f in _read_index(index)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise BadInput(f"{index}: lists shard {show(missing[0])} which is missing from {hf_dir}")
        return files
    if (hf_dir / SINGLE_FILE).is_file():
        return [hf_dir / SINGLE_FILE]
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise BadInput(f"{hf_dir}: no {SINGLE_FILE} nor {INDEX_FILE} (no safetensors weights)")
    return files


class Checkpoint:
    """All tensors of a checkpoint folder, read lazily through memory maps."""

    def __init__(self, hf_dir: Path) -> None:
        self.dir = hf_dir
        self.tensors: dict[str, StTensor] = {}
        self._maps: dict[Path, mmap.mmap] = {}
        for path in checkpoint_files(hf_dir):
            found, _ = _read_header(path)
            for name, t in found.items():
                if name in self.tensors:
                    raise BadInput(f"{hf_dir}: tensor {name} appears in two shards")
                self.tensors[name] = t

    def _map(self, path: Path) -> mmap.mmap:
        if path not in self._maps:
            with path.open("rb") as f:
                self._maps[path] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._maps[path]

    def raw(self, name: str) -> np.ndarray:
        """The stored values (BF16 as raw uint16), memory-mapped, numpy-order shape."""
        t = self.tensors[name]
        buf = np.frombuffer(self._map(t.file), dtype=np.uint8, count=t.nbytes, offset=t.begin)
        return buf.view(DTYPES[t.dtype]).reshape(t.shape)

    def release(self, name: str) -> None:
        """Tell the OS the pages of ``name`` are no longer needed (keeps RSS near one tensor)."""
        t = self.tensors[name]
        m = self._map(t.file)
        page = mmap.PAGESIZE
        start = (t.begin // page) * page
        length = t.end - start
        if hasattr(m, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            m.madvise(mmap.MADV_DONTNEED, start, length)

    def close(self) -> None:
        """Unmap every file; a map an array still views is left for the garbage collector."""
        for m in self._maps.values():
            with contextlib.suppress(BufferError):  # a traceback may still hold a view of it
                m.close()
        self._maps.clear()


def to_f32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values as float32 (BF16 raw bits widened exactly)."""
    if dtype == "BF16":  # the BF16 bits become the high half of each float32
        wide = np.zeros((*raw.shape, 2), dtype=np.uint16)
        wide[..., 1] = raw
        return wide.view(np.float32).reshape(raw.shape)
    return raw.astype(np.float32)


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> BF16 raw bits, round to nearest even (NaN kept NaN)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)


# ---- writing -------------------------------------------------------------------------------


@dataclass(slots=True)
class StPlan:
    """A tensor to write: dtype name, shape and a producer of its bytes in chunks."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    produce: Callable[[], Iterator[np.ndarray]]
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * DTYPES[self.dtype].itemsize


def write_safetensors(path: Path, plans: Sequence[StPlan], metadata: dict[str, str]) -> None:
    """Stream ``plans`` into one safetensors file (header first, then data in order)."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for p in plans:
        header[p.name] = {
            "dtype": p.dtype,
            "shape": list(p.shape),
            "data_offsets": [offset, offset + p.nbytes],
        }
        offset += p.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for p in plans:
            n = 0
            for chunk in p.produce():
                data = np.ascontiguousarray(chunk)
                f.write(data.data.cast("B"))
                n += data.nbytes
            if n != p.nbytes:
                raise ValueError(f"{p.name}: produced {n} bytes, planned {p.nbytes}")


def write_checkpoint(hf_dir: Path, plans: Sequence[StPlan], shards: int = 1) -> list[Path]:
    """Write ``plans`` as one file or as ``shards`` files plus the index JSON."""
    meta = {"format": "pt"}
    if shards <= 1:
        write_safetensors(hf_dir / SINGLE_FILE, plans, meta)
        return [hf_dir / SINGLE_FILE]
    groups: list[list[StPlan]] = [[] for _ in range(shards)]
    for i, p in enumerate(plans):
        groups[i * shards // len(plans)].append(p)
    files: list[Path] = []
    weight_map: dict[str, str] = {}
    for k, group in enumerate(groups, 1):
        name = f"model-{k:05d}-of-{shards:05d}.safetensors"
        write_safetensors(hf_dir / name, group, meta)
        files.append(hf_dir / name)
        weight_map.update({p.name: name for p in group})
    total = sum(p.nbytes for p in plans)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (hf_dir / INDEX_FILE).write_text(json.dumps(index, indent=2))
    return files
