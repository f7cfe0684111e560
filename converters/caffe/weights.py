"""Read the weight blobs of a ``.caffemodel`` without copying them more than once.

Why not ``caffe_pb2.NetParameter.FromString``: the protobuf runtime materializes every float
of every blob into its own repeated container, and turning that into numpy iterates element by
element (seconds for VGG-16's 138 M weights) while holding two full copies. Here the file is
walked at the wire level with ``mmap`` (only message headers are touched, never the weight
pages) and each blob is recorded as ``(offset, length, dtype, shape)``. A blob's bytes are read
with one ``pread`` when a layer handler asks for them, so peak memory stays at the ONNX model
being built plus the largest single blob.

Wire facts (field numbers from BVLC ``caffe.proto`` and NVIDIA Caffe, as read by OpenCV):
  NetParameter: layer=100 (LayerParameter), layers=2 (V1LayerParameter)
  LayerParameter: name=1, blobs=7;  V1LayerParameter: name=4, blobs=6, layer=1 (V0)
  V0LayerParameter: name=1, blobs=50
  BlobProto: num=1 channels=2 height=3 width=4 data=5 (packed float) shape=7
             double_data=8 (packed double) raw_data_type=10 raw_data=12 (NVCaffe)
  BlobShape: dim=1 (packed int64)
"""

from __future__ import annotations

import math
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.errors import ConversionError

_RAW_DTYPES = {0: "<f8", 1: "<f4", 2: "<f2"}  # NVCaffe Type enum: DOUBLE, FLOAT, FLOAT16


class _Truncated(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Truncated(pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Truncated(pos)


def _fields(buf, pos: int, end: int):
    """Yield ``(field_number, wire_type, value, start, stop)`` for one message's fields.

    For length-delimited fields ``value`` is unused and ``[start, stop)`` is the payload; for
    varints ``value`` is the integer; for fixed32/64 ``[start, stop)`` are the bytes.
    """
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Truncated(pos)
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, pos, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise _Truncated(pos)
            yield field, wire, None, pos, stop
            pos = stop
        elif wire == 5:
            if pos + 4 > end:
                raise _Truncated(pos)
            yield field, wire, None, pos, pos + 4
            pos += 4
        elif wire == 1:
            if pos + 8 > end:
                raise _Truncated(pos)
            yield field, wire, None, pos, pos + 8
            pos += 8
        else:  # groups (3, 4) never appear in caffe.proto; anything else is corruption
            raise _Truncated(pos)


@dataclass
class Blob:
    """One weight blob: its declared shape and where its values live in the file."""

    shape: tuple[int, ...]
    dtype: str  # numpy dtype string of the stored values
    count: int  # number of stored values
    segments: list[tuple[int, int]]  # (offset, byte length) runs in the file
    path: Path

    def file_range(self) -> tuple[int, int] | None:
        """``(offset, length)`` of the values in the file if they are one run of float32."""
        if self.dtype == "<f4" and len(self.segments) == 1:
            return self.segments[0]
        return None

    def array(self) -> np.ndarray:
        """The values as a float32 array of ``shape`` (one read; no copy if stored as float32)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            chunks = [os.pread(fd, n, off) for off, n in self.segments]
        finally:
            os.close(fd)
        if any(len(c) != n for c, (_, n) in zip(chunks, self.segments, strict=True)):
            raise ConversionError(f"{self.path}: caffemodel changed while being read")
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        arr = np.frombuffer(data, dtype=self.dtype, count=self.count)
        if self.dtype != "<f4":
            arr = arr.astype(np.float32)
        if self.shape and math.prod(self.shape) != self.count:
            raise ConversionError(
                f"{self.path}: a blob declares shape {list(self.shape)} but holds "
                f"{self.count} values"
            )
        return arr.reshape(self.shape if self.shape else (self.count,))


def _parse_shape(buf, start: int, stop: int) -> list[int]:
    dims: list[int] = []
    for field, wire, value, s, e in _fields(buf, start, stop):
        if field != 1:
            continue
        if wire == 0:
            dims.append(value)
        elif wire == 2:  # packed
            p = s
            while p < e:
                v, p = _varint(buf, p, e)
                dims.append(v)
    return dims


def _parse_blob(buf, start: int, stop: int, path: Path) -> Blob:
    shape: list[int] | None = None
    legacy = {}
    segments: dict[str, list[tuple[int, int]]] = {"<f4": [], "<f8": []}
    raw: tuple[int, int] | None = None
    raw_type = 1
    for field, wire, value, s, e in _fields(buf, start, stop):
        if field == 7 and wire == 2:
            shape = _parse_shape(buf, s, e)
        elif field in (1, 2, 3, 4) and wire == 0:
            legacy[field] = value
        elif field == 5:  # float data, packed (wire 2) or one value per field (wire 5)
            segments["<f4"].append((s, e - s))
        elif field == 8:  # double data
            segments["<f8"].append((s, e - s))
        elif field == 10 and wire == 0:
            raw_type = value
        elif field == 12 and wire == 2:
            raw = (s, e - s)
    if shape is None:
        # Legacy 4-D blobs; unset dims default to 0 in the proto, which Caffe treats as absent.
        shape = [legacy.get(i, 0) for i in (1, 2, 3, 4)] if legacy else []
    if raw is not None:
        if raw_type not in _RAW_DTYPES:
            raise ConversionError(f"{path}: blob raw_data_type {raw_type} is not supported")
        dtype, segs = _RAW_DTYPES[raw_type], [raw]
    elif segments["<f4"]:
        dtype, segs = "<f4", segments["<f4"]
    elif segments["<f8"]:
        dtype, segs = "<f8", segments["<f8"]
    else:
        dtype, segs = "<f4", []
    itemsize = np.dtype(dtype).itemsize
    nbytes = sum(n for _, n in segs)
    if nbytes % itemsize:
        raise _Truncated(start)
    count = nbytes // itemsize
    # A legacy blob may carry zeros for unused leading dims; drop them only if the data agrees.
    if shape and math.prod(shape) != count and 0 in shape:
        shape = [d for d in shape if d != 0]
    return Blob(tuple(int(d) for d in shape), dtype, count, segs, path)


_LAYER_FIELDS = {
    100: (1, 7),  # LayerParameter: name, blobs
    2: (4, 6),  # V1LayerParameter: name, blobs
}


def _parse_layer(buf, start: int, stop: int, name_field: int, blobs_field: int, path: Path):
    name = None
    blobs: list[Blob] = []
    for field, wire, _value, s, e in _fields(buf, start, stop):
        if wire != 2:
            continue
        if field == name_field:
            name = bytes(buf[s:e]).decode("utf-8", errors="replace")
        elif field == blobs_field:
            blobs.append(_parse_blob(buf, s, e, path))
        elif field == 1 and name_field == 4:  # V1 wrapping a V0 layer: name=1, blobs=50
            v0_name, v0_blobs = _parse_layer(buf, s, e, 1, 50, path)
            name = name or v0_name
            blobs = blobs or v0_blobs
    return name, blobs


def read_caffemodel(path: str | os.PathLike) -> dict[str, list[Blob]]:
    """Map layer name -> its blobs (lazy). Later duplicates win, as in Caffe's weight copy."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read caffemodel ({exc.strerror})") from None
    if size == 0:
        os.close(fd)
        raise ConversionError(f"{path}: caffemodel is empty")
    layers: dict[str, list[Blob]] = {}
    current = "<net header>"
    try:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
            for field, wire, _v, s, e in _fields(buf, 0, size):
                if field in _LAYER_FIELDS and wire == 2:
                    current = f"layer #{len(layers) + 1}"
                    name, blobs = _parse_layer(buf, s, e, *_LAYER_FIELDS[field], path)
                    if name is not None:
                        current = f"layer '{name}'"
                        layers[name] = blobs
    except _Truncated as exc:
        raise ConversionError(
            f"{path}: truncated or corrupted caffemodel (bad protobuf data at byte {exc.args[0]}, "
            f"in {current}); re-download it and check its sha256"
        ) from None
    finally:
        os.close(fd)
    return layers
