"""Golden data in the ONNX model zoo layout: ``test_data_set_N/input_K.pb`` / ``output_K.pb``.

Each file is one serialized ``onnx.TensorProto`` carrying its tensor's name (``onnx_test_runner``
and the model zoo's own checkers read them as is). Inputs are the DEPLOYED model's inputs in its
order, outputs the artifact's outputs in its order. ``reference_K.pb`` beside them hold what the
source model's reference runtime gave for the expected outputs (the checkers only read
``input_*``/``output_*``), so the ``verify`` gate can redo the comparison from files alone. A
new set of directories is written beside the old ones under a temporary name and swapped in by
renames, so a reader never sees a mix.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from converters.io import durable_replace, temp_prefix
from pipelines.errors import ZoomakeError

GOLDEN = "golden"  # the name the staging directory's temporaries are derived from
_SET = re.compile(r"test_data_set_(\d+)")
Tensors = list[tuple[str, np.ndarray]]


# onnx.proto's TensorProto.DataType of the numeric dtypes golden data holds. The files are
# encoded and decoded here, without importing onnx (~1 s of a measure task's start-up on this
# machine): fields dims = 1 (unpacked varints, proto2), data_type = 2, name = 8, raw_data = 9,
# in field order, as ``onnx.numpy_helper.from_array(a, name).SerializeToString()`` writes them
# (tests/test_golden_codec.py checks the bytes against onnx's and reads onnx's files back).
_DTYPES = {np.dtype(t): code for t, code in (
    ("float32", 1), ("uint8", 2), ("int8", 3), ("uint16", 4), ("int16", 5), ("int32", 6),
    ("int64", 7), ("bool", 9), ("float16", 10), ("float64", 11), ("uint32", 12), ("uint64", 13),
)}  # fmt: skip
_CODES = {code: dtype for dtype, code in _DTYPES.items()}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64: two's complement, 10 bytes (protobuf's rule)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_tensor(name: str, array: np.ndarray) -> bytes:
    """The serialized ``onnx.TensorProto`` of ``array`` (raw data, little-endian)."""
    array = np.asarray(array, order="C")
    code = _DTYPES.get(array.dtype.newbyteorder("=")) if array.dtype.isnative else None
    if code is None or sys.byteorder != "little":  # anything else: onnx's own writer
        from onnx import numpy_helper

        return numpy_helper.from_array(array, name).SerializeToString()
    parts = [b"\x08" + _varint(d) for d in array.shape]
    parts.append(b"\x10" + _varint(code))
    if name:
        raw_name = name.encode("utf-8")
        parts.append(b"\x42" + _varint(len(raw_name)) + raw_name)
    raw = array.tobytes()
    parts.append(b"\x4a" + _varint(len(raw)) + raw)
    return b"".join(parts)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, pos


def decode_tensor(data: bytes) -> tuple[str, np.ndarray] | None:
    """``(name, array)`` of a TensorProto of the form ``encode_tensor`` writes, else None
    (another form: packed dims, typed data fields, external data; onnx reads those)."""
    dims, code, name, raw, pos = [], None, "", None, 0
    try:
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            if key == 0x08:
                d, pos = _read_varint(data, pos)
                dims.append(d - (1 << 64) if d >= 1 << 63 else d)
            elif key == 0x10:
                code, pos = _read_varint(data, pos)
            elif key in (0x42, 0x4A):
                size, pos = _read_varint(data, pos)
                if pos + size > len(data):
                    return None
                chunk, pos = data[pos : pos + size], pos + size
                if key == 0x42:
                    name = chunk.decode("utf-8")
                else:
                    raw = chunk
            else:
                return None
    except (ValueError, UnicodeDecodeError):
        return None
    dtype = _CODES.get(code)
    if dtype is None or raw is None or any(d < 0 for d in dims):
        return None
    count = 1
    for d in dims:
        count *= d
    if len(raw) != count * dtype.itemsize:
        return None
    return name, np.frombuffer(raw, dtype=dtype).reshape(dims).copy()


def _write_tensor(path: Path, name: str, array: np.ndarray) -> None:
    # ascontiguousarray as ever: a 0-d array is stored with shape (1,), as it always was.
    path.write_bytes(encode_tensor(name, np.ascontiguousarray(array)))


def write_golden(out_dir: Path, sets: list[tuple[Tensors, ...]]) -> list[Path]:
    """Replace ``out_dir``'s golden sets by ``sets`` (``[(inputs, outputs[, references])]``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Named like every temporary (converters.io), so a run killed mid-write is swept next time.
    staging = Path(tempfile.mkdtemp(prefix=temp_prefix(out_dir / GOLDEN), dir=out_dir))
    try:
        for n, tensor_lists in enumerate(sets):
            d = staging / f"test_data_set_{n}"
            d.mkdir()
            for kind, tensors in zip(("input", "output", "reference"), tensor_lists, strict=False):
                for k, (name, array) in enumerate(tensors):
                    _write_tensor(d / f"{kind}_{k}.pb", name, array)
        trash = staging / ".old"
        trash.mkdir()
        for old in golden_sets(out_dir):
            old.rename(trash / old.name)
        final = []
        for n in range(len(sets)):
            durable_replace(staging / f"test_data_set_{n}", out_dir / f"test_data_set_{n}")
            final.append(out_dir / f"test_data_set_{n}")
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def golden_sets(out_dir: Path) -> list[Path]:
    """The ``test_data_set_N`` directories of ``out_dir``, by N."""
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if (m := _SET.fullmatch(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def _read_tensor(path: Path) -> tuple[str, np.ndarray]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ZoomakeError(f"{path}: not a readable ONNX TensorProto ({exc})") from None
    found = decode_tensor(data)
    if found is not None:
        return found
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(data)
        return tensor.name, numpy_helper.to_array(tensor)
    except (OSError, DecodeError, ValueError) as exc:
        raise ZoomakeError(f"{path}: not a readable ONNX TensorProto ({exc})") from None


def read_tensors(set_dir: Path, kind: str) -> dict[str, np.ndarray]:
    """The ``<kind>_K.pb`` tensors of one golden set (kind: input, output, reference), by K."""
    pattern = re.compile(rf"{kind}_(\d+)\.pb")
    found = [(int(m.group(1)), p) for p in set_dir.iterdir() if (m := pattern.fullmatch(p.name))]
    return dict(_read_tensor(p) for _, p in sorted(found))


def read_set(set_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, outputs)`` of one golden set, each ``{name: array}`` in file order."""
    return read_tensors(set_dir, "input"), read_tensors(set_dir, "output")
