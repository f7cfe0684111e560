"""ONNX models whose big weights stay in their files: a 550 MB VGG-16 converted, optimized and
exported (ONNX, FP16 ONNX, OpenVINO IR) without its weights ever being held in memory whole.

A *placeholder* is a top-level graph initializer with its name, type and shape but without its
bytes: those are a range of a file (the caffemodel the Caffe converter read, or the previous
build stage's ``model.onnx``). It is marked as ONNX external data (``data_location:
EXTERNAL``) with the file's absolute path, offset, length and identity stamp
(``zoomake.stamp``, see ``converters.io.FileRange``), and optionally ``zoomake.convert:
float16`` (the float16 values of the float32 range: the FP16 conversion). Everything that
looks at shapes treats it like any external initializer (``onnx_utils.light_copy`` makes it
a graph input); what reads values calls ``tensor_array``, one tensor at a time.

Placeholders exist only inside one process: ``load_lazy`` makes them from a file zoomake wrote
(or an ONNX source, ``converters.onnx_source``: the ranges are those this module parsed out of
that file, never locations the model names), ``save_streamed`` writes them back as ordinary bytes, and a model read from a user's file
(``io.load_onnx``) resolves its real external data into memory first, so a placeholder always
points where zoomake itself put it.

``save_streamed`` writes exactly the bytes ``SerializeToString`` would give for the same
model with every placeholder filled in (protobuf writes a message's fields in field-number
order, so the model is written as its fields before the graph, the graph's fields before the
initializers, each initializer with its ``raw_data`` spliced in, and the fields after): the
artifacts do not depend on whether the weights were in memory. The bytes of a placeholder go
file to file through one 16 MiB buffer or, for float16, converted 16 MiB at a time. The result stays
one ``.onnx`` file, which protobuf limits to 2 GiB (refused above, in one line, as before).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converters.errors import ConversionError
from converters.io import FileRange, atomic_output, len_field
from converters.onnx_utils import all_tensors

BIG = 1 << 20  # bytes of raw data from which an initializer read from a file stays there
STAMP, CONVERT = "zoomake.stamp", "zoomake.convert"
_GRAPH, _INITIALIZER, _RAW_DATA = 7, 5, 9  # ModelProto.graph, .initializer, TensorProto.raw_data


# -- placeholders --------------------------------------------------------------------------------
def placeholder(
    name: str, dtype: int, dims, where: FileRange, convert: str | None = None
) -> TensorProto:
    """An initializer ``name`` whose bytes are ``where`` (converted to ``convert``, if given)."""
    t = TensorProto(name=name, data_type=dtype, dims=dims)
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", str(where.path)), ("offset", str(where.offset)),
               ("length", str(where.length)), (STAMP, where.stamp())]  # fmt: skip
    if convert:
        entries.append((CONVERT, convert))
    for key, value in entries:
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def is_placeholder(t: TensorProto) -> bool:
    return t.data_location == TensorProto.EXTERNAL and any(e.key == STAMP for e in t.external_data)


def _entries(t: TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in t.external_data}


def file_range(t: TensorProto) -> FileRange:
    """Where placeholder ``t``'s (source) bytes are."""
    e = _entries(t)
    return FileRange(e["location"], int(e["offset"]), int(e["length"]), stamp=e[STAMP])


def data(t: TensorProto):
    """Placeholder ``t``'s bytes as an object with ``len``, ``read()`` and ``copy_to(file)``."""
    where = file_range(t)
    convert = _entries(t).get(CONVERT)
    if convert is None:
        return where
    if convert != "float16":
        raise ConversionError(f"initializer '{t.name}': unknown conversion {convert!r}")
    return HalfBytes(where)


def as_float16(t: TensorProto) -> TensorProto:
    """A float16 placeholder of float32 placeholder ``t`` (the same file range)."""
    return placeholder(t.name, TensorProto.FLOAT16, t.dims, file_range(t), "float16")


def tensor_array(t: TensorProto) -> np.ndarray:
    """The value of initializer ``t``, a placeholder or not."""
    if not is_placeholder(t):
        return numpy_helper.to_array(t)
    dtype = helper.tensor_dtype_to_np_dtype(t.data_type).newbyteorder("<")
    return np.frombuffer(data(t).read(), dtype=dtype).reshape(tuple(t.dims))


def placeholders(model: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in model.graph.initializer if is_placeholder(t)]


def materialize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fill every placeholder of ``model`` in with its bytes, in place (for the converters
    that need every value: Caffe, MXNet, PyTorch writers, the opset converter)."""
    for t in placeholders(model):
        _fill(t)
    return model


def _fill(t: TensorProto) -> None:
    raw = data(t).read()
    del t.external_data[:]
    t.ClearField("data_location")
    t.raw_data = raw


class SplitModel:
    """An ONNX model whose large initializers are held beside the proto (the Caffe converter's
    result): ``light`` is a complete ``ModelProto`` except for the tensors in ``big``
    (``(name, onnx dtype, dims, data)``, data: raw little-endian ``bytes`` or a ``FileRange``
    of the caffemodel). ``materialize`` appends them to ``light``'s initializers, in order: as
    ordinary tensors (one copy of each, released from ``big`` as it goes), or with ``lazy``
    the ``FileRange`` ones as placeholders (``converters.lazy``) left in the caffemodel.
    """

    def __init__(self, light, big: list[tuple[str, int, tuple[int, ...], bytes]]):
        self.light = light
        self.big = big

    def materialize(self, lazy: bool = False):
        model = self.light
        while self.big:
            name, dtype, dims, raw = self.big.pop(0)
            t = model.graph.initializer.add()
            if lazy and isinstance(raw, FileRange):
                t.CopyFrom(placeholder(name, dtype, dims, raw))
                continue
            t.CopyFrom(TensorProto(name=name, data_type=dtype, dims=dims))
            t.raw_data = raw if isinstance(raw, bytes) else raw.read()
            del raw
        return model


# -- float16 on the fly --------------------------------------------------------------------------
def max_abs_finite(values: np.ndarray, chunk: int = 1 << 22) -> float:
    """max |x| over the finite values (0 if none), in chunks: no full-size temporaries.

    A chunk's max and min (two reductions, no temporary) give it when both are finite; only a
    chunk holding an inf or a NaN takes the masked ``|x|`` pass."""
    best = 0.0
    for start in range(0, values.size, chunk):
        part = values[start : start + chunk]
        if not part.size:
            continue
        hi, lo = float(part.max()), float(part.min())
        if np.isfinite(hi) and np.isfinite(lo):
            best = max(best, hi, -lo)
            continue
        a = np.abs(part)
        best = max(best, float(np.max(a, where=np.isfinite(a), initial=0.0)))
    return best


class HalfBytes:
    """The float16 bytes of the float32 values of a ``FileRange``, converted chunk by chunk
    when written (``copy_to``) or read, through buffers reused from chunk to chunk."""

    CHUNK = 1 << 22  # float32 values per chunk (16 MiB)

    def __init__(self, raw: FileRange):
        self.raw = raw

    def __len__(self) -> int:
        return len(self.raw) // 2

    def chunks(self):
        """The float32 values, a chunk at a time (each array is valid until the next)."""
        step = self.CHUNK * 4
        buf = memoryview(bytearray(min(step, len(self.raw))))
        for start in range(0, len(self.raw), step):
            view = buf[: min(step, len(self.raw) - start)]
            self.raw.read_into(start, view)
            yield np.frombuffer(view, dtype="<f4")

    def max_abs_finite(self) -> float:
        return max((max_abs_finite(a) for a in self.chunks()), default=0.0)

    def read(self) -> bytes:
        return b"".join(a.astype("<f2").tobytes() for a in self.chunks())

    def copy_to(self, out) -> None:
        half = np.empty(min(self.CHUNK, len(self.raw) // 4), dtype="<f2")
        for a in self.chunks():
            h = half[: a.size]
            np.copyto(h, a, casting="unsafe")  # the same rounding as astype
            out.write(h.data)


# -- reading -------------------------------------------------------------------------------------
def _varint(buf, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf, start: int, end: int):
    """``(number, field start, value start, value end)`` of each field in ``buf[start:end]``
    (length-delimited values: the payload; others: their encoding)."""
    pos = start
    while pos < end:
        first = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, value_end = _varint(buf, pos)
        elif wire == 1:
            value_end = pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value_end = pos + n
        elif wire == 5:
            value_end = pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if value_end > end:
            raise ValueError("truncated")
        yield number, first, pos, value_end
        pos = value_end


def _light_tensor(buf, start: int, end: int, limit: int) -> tuple[bytes, tuple[int, int] | None]:
    """A TensorProto's bytes without a ``raw_data`` of more than ``limit`` bytes, and where that
    raw data is in ``buf``."""
    for number, first, value, value_end in _fields(buf, start, end):
        if number == _RAW_DATA and value_end - value > limit:
            return bytes(buf[start:first]) + bytes(buf[value_end:end]), (value, value_end - value)
    return bytes(buf[start:end]), None


def _light_graph(buf, start: int, end: int, limit: int, big: list) -> bytes:
    out = bytearray()
    for number, first, value, value_end in _fields(buf, start, end):
        if number != _INITIALIZER:
            out += buf[first:value_end]
            continue
        tensor, where = _light_tensor(buf, value, value_end, limit)
        big.append(where)
        out += len_field(_INITIALIZER, len(tensor)) + tensor
    return bytes(out)


def load_lazy(path: str | os.PathLike, limit: int = BIG) -> onnx.ModelProto:
    """``io.load_onnx(path)`` with every top-level initializer whose ``raw_data`` has more than
    ``limit`` bytes left in the file as a placeholder. A file this cannot read so (not ONNX, or
    with external data of its own) is read by ``load_onnx`` instead, with its errors."""
    from converters.io import _check_utf8, load_onnx

    p = Path(path)
    model = None
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                where = FileRange(p, 0, size)
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    model = _parse_light(buf, size, limit, where)
    except (OSError, ValueError, IndexError):
        model = None
    if model is None:
        return load_onnx(p)
    _check_utf8(model.graph, p)
    return model


def _parse_light(buf, size: int, limit: int, whole: FileRange) -> onnx.ModelProto | None:
    from google.protobuf.message import DecodeError

    out, big = bytearray(), []
    for number, first, value, value_end in _fields(buf, 0, size):
        if number == _GRAPH:
            graph = _light_graph(buf, value, value_end, limit, big)
            out += len_field(_GRAPH, len(graph)) + graph
        else:
            out += buf[first:value_end]
    if not any(big):
        return None  # nothing to leave in the file: the plain reader
    try:
        model = onnx.ModelProto.FromString(bytes(out))
    except DecodeError:
        return None
    if model.ir_version <= 0 or len(model.graph.initializer) != len(big):
        return None
    if any(t.data_location == TensorProto.EXTERNAL for t in all_tensors(model)):
        return None  # real external data: load_onnx resolves it (and checks its locations)
    for t, where in zip(model.graph.initializer, big, strict=True):
        if where is not None:
            offset, length = where
            t.CopyFrom(placeholder(t.name, t.data_type, t.dims, whole.sub(offset, length)))
    return model


# -- writing -------------------------------------------------------------------------------------
def _part(msg, lo: int, hi: int) -> bytes:
    """The serialized fields of ``msg`` numbered ``lo <= n < hi`` (a message is its fields in
    field-number order, so parts concatenate to the whole)."""
    keep = type(msg)()  # only those fields copied: never the initializers' bytes twice
    for fd, value in msg.ListFields():
        if not lo <= fd.number < hi:
            continue
        if hasattr(value, "extend"):  # a repeated field
            getattr(keep, fd.name).extend(value)
        elif hasattr(value, "CopyFrom"):  # a message
            getattr(keep, fd.name).CopyFrom(value)
        else:
            setattr(keep, fd.name, value)
    return keep.SerializeToString()


def _tensor_parts(t: TensorProto) -> list:
    """The pieces of initializer ``t`` as it is written: bytes, and a placeholder's data."""
    if not is_placeholder(t):
        body = t.SerializeToString()
        return [len_field(_INITIALIZER, len(body)) + body]
    plain = TensorProto()
    plain.CopyFrom(t)
    del plain.external_data[:]
    plain.ClearField("data_location")
    raw = data(t)
    lo, hi = _part(plain, 0, _RAW_DATA), _part(plain, _RAW_DATA + 1, 1 << 29)
    head = len_field(_RAW_DATA, len(raw))
    body = len(lo) + len(head) + len(raw) + len(hi)
    return [len_field(_INITIALIZER, body) + lo + head, raw, hi]


def save_streamed(model: onnx.ModelProto, path: str | os.PathLike, before_commit=None) -> None:
    """``io.save_onnx(model, path)`` for a model with placeholders: the same bytes as for the
    model with them filled in, written without ever holding their data. ``before_commit()``
    runs once the bytes are written, before they are renamed onto ``path``: an exception from
    it leaves ``path`` untouched and removes them."""
    from converters.io import save_onnx

    if not placeholders(model):
        if before_commit is not None:
            before_commit()
        save_onnx(model, path)
        return
    graph = model.graph
    inits = [piece for t in graph.initializer for piece in _tensor_parts(t)]
    graph_pieces = [_part(graph, 0, _INITIALIZER), *inits, _part(graph, _INITIALIZER + 1, 1 << 29)]
    graph_len = sum(map(len, graph_pieces))
    pieces = [_part(model, 0, _GRAPH), len_field(_GRAPH, graph_len), *graph_pieces,
              _part(model, _GRAPH + 1, 1 << 29)]  # fmt: skip
    total = sum(map(len, pieces))
    if total >= 2**31:
        raise ConversionError(
            f"{path}: model is {total} bytes, over protobuf's 2 GiB single-file limit"
        )
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        for piece in pieces:
            if isinstance(piece, bytes):
                f.write(piece)
            else:
                piece.copy_to(f)
        if before_commit is not None:
            before_commit()


def save_external(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (a ``model.onnx`` in a temporary directory of its own) with
    each placeholder as ONNX external data where its bytes are: through a hard link
    ``weights.<n>`` beside ``path`` to each file holding some (OpenVINO refuses symbolic
    links), so nothing is copied and OpenVINO maps them; where a link cannot be made (another
    file system) the bytes are copied into ``weights.copy``, each at a 4 KiB-aligned offset.
    Float16 placeholders (none in the build: OpenVINO compresses itself) are filled in."""
    path = Path(path)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    links: dict[Path, str | None] = {}
    copy = path.with_name("weights.copy")
    with contextlib.ExitStack() as stack:
        copied = None
        for t in placeholders(out):
            if _entries(t).get(CONVERT):
                _fill(t)
                continue
            where = file_range(t)
            where.check()
            if where.path not in links:
                link = path.with_name(f"weights.{len(links)}")
                try:
                    os.link(where.path, link)
                    links[where.path] = link.name
                except OSError:
                    links[where.path] = None
            location, offset = links[where.path], where.offset
            if location is None:
                copied = copied or stack.enter_context(open(copy, "wb"))
                copied.write(bytes(-copied.tell() % 4096))
                location, offset = copy.name, copied.tell()
                where.copy_to(copied)
            del t.external_data[:]
            for key, value in (("location", location), ("offset", offset),
                               ("length", where.length)):  # fmt: skip
                entry = t.external_data.add()
                entry.key, entry.value = key, str(value)
    path.write_bytes(out.SerializeToString())
