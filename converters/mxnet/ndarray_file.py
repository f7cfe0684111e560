"""MXNet 1.x NDArray list files (``.params``, ``.nd``): written and read here, no mxnet needed.

Layout (little-endian; learnt from MXNet's ``src/ndarray/ndarray.cc`` ``NDArray::Save``, the
``mx.nd.save`` path, and dmlc-core's vector/string serializers)::

    u64 0x112 (kMXAPINDArrayListMagic)   u64 0 (reserved)
    u64 count, then per array:
        u32 0xF993FAC9 (NDARRAY_V2_MAGIC)  i32 storage type (0: dense)
        i32 ndim, i64 dims[ndim]           (a 0-d shape means "none": nothing follows)
        i32 dev_type (1: cpu), i32 dev_id  i32 type flag (see _DTYPES)
        raw data, C order
    u64 count, then per name: u64 length, bytes (``arg:<name>`` / ``aux:<name>`` in checkpoints)

Only dense arrays are supported (sparse storage is refused with one line); V3 files (written
under numpy shape semantics) carry the same fields after their own magic and are read too.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from converters.errors import ConversionError

LIST_MAGIC = 0x112
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
# mshadow type flags
_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8,
           6: np.int64, 7: np.bool_}  # fmt: skip
_FLAGS = {np.dtype(t): k for k, t in _DTYPES.items()}


def encode(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of ``mx.nd.save(path, arrays)`` (dense arrays on cpu, V2 records)."""
    return b"".join(chunks(arrays))


def chunks(arrays: dict[str, np.ndarray]) -> list:
    """``encode``'s bytes as a list of buffers (headers and the arrays' own memory, no copy)."""
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for name, value in arrays.items():
        arr = np.ascontiguousarray(value)
        if arr.dtype not in _FLAGS:
            raise ConversionError(f"MXNet params: '{name}' has dtype {arr.dtype}, which MXNet "
                                  f"cannot store (one of {', '.join(str(np.dtype(t)) for t in _DTYPES.values())})")  # fmt: skip
        if arr.ndim == 0:  # MXNet 1.x has no 0-d arrays: a 0-d shape means "no array"
            arr = arr.reshape(1)
        parts.append(struct.pack("<Ii", V2_MAGIC, 0))
        parts.append(struct.pack(f"<i{arr.ndim}q", arr.ndim, *arr.shape))
        parts.append(struct.pack("<iii", 1, 0, _FLAGS[arr.dtype]))
        little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        parts.append(memoryview(np.ascontiguousarray(little)).cast("B"))
    parts.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        raw = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(raw)) + raw)
    return parts


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    from converters.io import write_together

    write_together([(Path(path), chunks(arrays))])


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = memoryview(data), 0, where

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise self.error(f"truncated at byte {self.pos} (needs {size} more)")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def raw(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"truncated at byte {self.pos} (needs {n} bytes of data)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def error(self, why: str) -> ConversionError:
        return ConversionError(f"{self.where}: not an MXNet NDArray file: {why}")


def decode(data: bytes, where: str = "params") -> dict[str, np.ndarray]:
    """Arrays by name from the bytes of an NDArray list file (unnamed lists get '0', '1', ...)."""
    r = _Reader(data, where)
    magic, _reserved, count = r.take("<QQQ")
    if magic != LIST_MAGIC:
        raise r.error(f"expected the list magic 0x112 at byte 0, found {magic:#x}")
    if count > len(data):
        raise r.error(f"claims {count} arrays in {len(data)} bytes")
    arrays = [_array(r, i) for i in range(count)]
    (n_names,) = r.take("<Q")
    if n_names not in (0, count):
        raise r.error(f"{count} arrays but {n_names} names")
    names = []
    for _ in range(n_names):
        (length,) = r.take("<Q")
        names.append(bytes(r.raw(length)).decode("utf-8", "replace"))
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} unexpected bytes after the names")
    names = names or [str(i) for i in range(count)]
    if len(set(names)) != len(names):
        raise r.error("a name appears twice")
    return dict(zip(names, arrays, strict=True))


def _array(r: _Reader, index: int) -> np.ndarray:
    (magic,) = r.take("<I")
    if magic not in (V2_MAGIC, V3_MAGIC):
        raise r.error(f"array {index}: unknown record magic {magic:#x} (only V2/V3 records)")
    (stype,) = r.take("<i")
    if stype != 0:
        raise r.error(f"array {index}: storage type {stype} is sparse (only dense arrays)")
    (ndim,) = r.take("<i")
    if ndim < 0 or ndim > 32:
        raise r.error(f"array {index}: {ndim} dimensions")
    dims = r.take(f"<{ndim}q") if ndim else ()
    if ndim == 0 or any(d < 0 for d in dims):
        return np.zeros((0,), np.float32)  # a "none" array: no context, no data follows
    _dev_type, _dev_id, flag = r.take("<iii")
    if flag not in _DTYPES:
        raise r.error(f"array {index}: unknown type flag {flag}")
    dtype = np.dtype(_DTYPES[flag]).newbyteorder("<")
    n = int(np.prod(dims, dtype=np.int64))
    buf = r.raw(n * dtype.itemsize)
    return np.frombuffer(buf, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConversionError(f"{p}: cannot read the MXNet NDArray file: {exc.strerror}") from None
    return decode(data, str(p))
