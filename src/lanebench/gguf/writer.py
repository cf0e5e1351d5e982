"""Write a GGUF one tensor at a time, atomically: a temporary file renamed at the end.

Tensors are planned first (name, shape, type) and produced later as a stream of encoded
chunks, so peak memory stays near a few chunks, not one model. One background thread produces
chunks (numpy work, GIL released) up to ``PREFETCH`` ahead while the caller's thread writes,
so producing and writing overlap. A failure mid-write (disk full, file-size limit, Ctrl-C)
stops and joins that thread, then removes the temporary file: no half file under the final
name, and nothing reads a tensor's source after ``write_gguf`` returns. Given a ``check``, the
finished temporary file is read back and checked before it takes the final name: a file its
own readers would refuse is removed, never left behind.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFEndian, GGUFValueType, GGUFWriter
from gguf.quants import quant_shape_to_byte_shape

from lanebench.errors import BadInput
from lanebench.gguf import keys as K

Q = GGMLQuantizationType
# written by the writer itself: the architecture it is given, the alignment it lays data out with
_LAYOUT_KEYS = frozenset({K.ARCHITECTURE.template, K.ALIGNMENT.template})
Check = Callable[[Path], list[str]]  # a written file -> what its readers would refuse in it
PREFETCH = 2  # chunks produced ahead of the one being written
_ITEM = {Q.F32: 4, Q.F16: 2, Q.BF16: 2, Q.I32: 4, Q.I8: 1, Q.I16: 2, Q.I64: 8, Q.F64: 8}


@dataclass(frozen=True, slots=True)
class Packed:
    """A value already in GGUF wire format (type tag included), copied from another file.

    Re-packing a 262,144-entry vocabulary element by element costs seconds; copying its
    bytes costs milliseconds and cannot change a single token.
    """

    data: bytes

    def __len__(self) -> int:  # GGUFWriter logs values; keep that cheap
        return len(self.data)


class _Writer(GGUFWriter):
    """GGUFWriter that passes ``Packed`` values through unchanged (they must be in the
    writer's byte order) and writes empty arrays, which GGUF allows."""

    def _pack_val(
        self, val: Any, vtype: GGUFValueType, add_vtype: bool, sub_type: GGUFValueType | None = None
    ) -> bytes:
        if isinstance(val, Packed):
            return val.data if add_vtype else val.data[4:]
        if vtype == GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
            tag = self._pack("I", vtype) if add_vtype else b""
            return tag + self._pack("I", sub_type) + self._pack("Q", 0)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


@dataclass(frozen=True, slots=True)
class KV:
    """One metadata key with its GGUF type (arrays carry the element type)."""

    key: str
    value: Any
    vtype: GGUFValueType
    sub_type: GGUFValueType | None = None


def u32(key: str, v: int) -> KV:
    return KV(key, int(v), GGUFValueType.UINT32)


def f32(key: str, v: float) -> KV:
    return KV(key, float(v), GGUFValueType.FLOAT32)


def boolean(key: str, v: bool) -> KV:
    return KV(key, bool(v), GGUFValueType.BOOL)


def string(key: str, v: str) -> KV:
    return KV(key, str(v), GGUFValueType.STRING)


def array(key: str, values: Sequence[Any], sub: GGUFValueType) -> KV:
    return KV(key, list(values), GGUFValueType.ARRAY, sub)


@dataclass(frozen=True, slots=True)
class TensorPlan:
    """A tensor to write: numpy-order ``shape`` (outermost first) of the logical values,
    stored as ``qtype``; ``produce`` yields its encoded bytes in order, in any chunking."""

    name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType
    produce: Callable[[], Iterator[np.ndarray]]

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes in the file."""
        if self.qtype in _ITEM:
            return int(np.prod(self.shape, dtype=np.int64)) * _ITEM[self.qtype]
        return int(np.prod(quant_shape_to_byte_shape(self.shape, self.qtype), dtype=np.int64))


def partial_path(path: Path) -> Path:
    """The temporary name a write uses before the final rename."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def refuse_existing(path: Path, force: bool, flag: str = "--force") -> None:
    """BadInput if ``path`` exists and ``force`` is off."""
    if path.exists() and not force:
        raise BadInput(f"output {path} already exists (pass {flag} to replace it)")
    if not path.parent.is_dir():
        raise BadInput(f"output {path}: folder {path.parent} does not exist")


def write_gguf(
    path: Path,
    arch: str,
    kvs: Iterable[KV],
    tensors: Sequence[TensorPlan],
    *,
    on_tensor: Callable[[TensorPlan], None] | None = None,
    big_endian: bool = False,
    check: Check | None = None,
) -> int:
    """Write the file at ``path`` via a temporary name; returns bytes written.

    ``big_endian`` writes the header in that byte order (tensor bytes are written as given).
    ``check`` reads the finished file back; any problem it names is a BadInput and no file."""
    tmp = partial_path(path)
    try:
        size = _write(tmp, arch, kvs, tensors, on_tensor, big_endian)
        problems = check(tmp) if check is not None else []
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BadInput(
                f"output {path}: not written: the file would fail its own check: {problems[0]}{more}"
            )
        tmp.replace(path)
        return size
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise BadInput(
                f"output {path}: write failed ({os.strerror(exc.errno)}); nothing was left under that name"
            ) from None
        raise BadInput(f"output {path}: write failed ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write(
    tmp: Path,
    arch: str,
    kvs: Iterable[KV],
    tensors: Sequence[TensorPlan],
    on_tensor: Callable[[TensorPlan], None] | None,
    big_endian: bool = False,
) -> int:
    w = _Writer(tmp, arch, endianess=GGUFEndian.BIG if big_endian else GGUFEndian.LITTLE)
    for kv in kvs:
        if kv.key in _LAYOUT_KEYS:
            continue
        if kv.key in w.kv_data[0]:
            raise ValueError(f"key {kv.key!r} given twice")
        w.add_key_value(kv.key, kv.value, kv.vtype, sub_type=kv.sub_type)
    for t in tensors:
        # a non-uint8 dtype: ``shape`` is the logical shape, not a byte shape
        w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0]
    chunks = _prefetch(_chunks(tensors), PREFETCH)
    try:
        for t in tensors:
            _write_tensor(w, fout, t, chunks)
            if on_tensor is not None:
                on_tensor(t)
    finally:
        chunks.close()
    fout.flush()
    os.fsync(fout.fileno())
    size = fout.tell()
    w.close()
    return size


def _chunks(tensors: Sequence[TensorPlan]) -> Iterator[np.ndarray | None]:
    """Every tensor's chunks, contiguous, in file order; ``None`` after each tensor."""
    for t in tensors:
        for chunk in t.produce():
            yield np.ascontiguousarray(chunk)
        yield None


def _prefetch(items: Iterator[np.ndarray | None], depth: int) -> Generator[np.ndarray | None, None, None]:
    """``items``, produced by a background thread at most ``depth`` ahead. Its errors re-raise
    here; closing this generator stops the thread and waits for it (its current chunk)."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the writing thread, which re-raises it
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=run, name="gguf-write-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def _write_tensor(w: GGUFWriter, fout: Any, t: TensorPlan, chunks: Iterator[np.ndarray | None]) -> None:
    """Same layout as ``GGUFWriter.write_tensor_data``, from the stream of ``t``'s chunks."""
    w.tensors[0].pop(t.name)
    w.write_padding(fout, fout.tell())
    written = 0
    while (buf := next(chunks)) is not None:
        write_chunk(fout, buf)
        written += buf.nbytes
    if written != t.nbytes:
        raise ValueError(f"tensor {t.name}: produced {written} bytes, planned {t.nbytes}")
    w.write_padding(fout, written)


def write_chunk(fout: Any, buf: np.ndarray) -> None:
    """Write one chunk (a seam for tests that simulate a full disk)."""
    fout.write(buf.data.cast("B"))
