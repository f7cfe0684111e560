"""The builder that layer handlers emit ONNX into, and the view of one Caffe layer they read.

Naming (SSA): Caffe reuses a blob name for in-place layers (``ReLU`` with ``top == bottom``).
Each write gets its own ONNX value: the *last* write of a blob keeps the Caffe name (so graph
outputs are named as the Caffe top blobs), earlier writes are named ``<blob>@<layer>``.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from converters.errors import MAX_TENSOR_ELEMENTS, ConversionError
from converters.io import FileRange
from converters.names import unique_name

BIG_TENSOR = 1 << 20  # bytes; larger initializers are kept out of the proto until saved


def raw_bytes(arr: np.ndarray) -> bytes:
    """Little-endian bytes of ``arr``; no copy when it views a whole ``bytes`` object.

    Weights read from a caffemodel arrive as ``np.frombuffer(<bytes>)`` reshaped: handing that
    ``bytes`` object on avoids a second copy of every weight (VGG-16 has 550 MB of them).
    """
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if (
        isinstance(base, bytes)
        and arr.flags.c_contiguous
        and arr.dtype.byteorder in "<=|"
        and arr.nbytes == len(base)
        and arr.ctypes.data == np.frombuffer(base, np.uint8).ctypes.data
    ):
        return base
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def tensor_from_array(name: str, arr: np.ndarray) -> TensorProto:
    """A TensorProto holding ``arr`` (float64 narrowed to float32)."""
    arr = np.asarray(arr)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    t = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(arr.dtype), dims=arr.shape)
    t.raw_data = raw_bytes(arr)
    return t


class LayerView:
    """Uniform access to a modern ``LayerParameter`` or a legacy ``V1LayerParameter``."""

    def __init__(self, proto, type_name: str, blobs, source: str, index: int):
        self.proto = proto
        self.name: str = proto.name
        self.type: str = type_name
        self.bottoms: list[str] = list(proto.bottom)
        self.tops: list[str] = list(proto.top)
        self._blobs = blobs  # list[weights.Blob] or None when no caffemodel was given
        self.source = source  # prototxt path, for messages
        self.index = index
        # prototxt.UnknownField entries of this layer: fields our schema lacks, left unparsed
        self.unknown: tuple = ()

    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.source}: layer '{self.name}' ({self.type}): {message}")

    def param(self, field: str):
        """The layer's ``<field>`` message (defaults filled in by protobuf if absent).

        A handler reading it relies on every field inside being known: one our schema lacks
        (a typo, or a fork's addition) could change the numbers, so it is an error here.
        """
        # A V0 layer keeps every parameter in its nested `layer`, upgraded into all of them.
        lacking = [f for f in self.unknown if f.path.startswith((field + ".", "layer."))]
        if lacking:
            cut = ",".join(self.bottoms)
            raise self.error(
                f"{', '.join(f.where for f in lacking)} is not a field zoomake's caffe.proto "
                f"knows, and converting this layer reads {field}; correct it, or cut the graph "
                f"before this layer with --outputs {cut} (recipe: outputs: [{cut.replace(',', ', ')}])"
            )
        try:
            return getattr(self.proto, field)
        except AttributeError:
            # V1 layers lack the fields of layers added after the V1 format was frozen.
            from converters.caffe.proto import caffe_pb2

            return getattr(caffe_pb2.LayerParameter(), field)

    def has_param(self, field: str) -> bool:
        try:
            return self.proto.HasField(field)
        except ValueError:
            return False

    @property
    def num_blobs(self) -> int:
        return len(self._blobs or [])

    def blob(self, i: int, shape: tuple[int, ...] | None = None, what: str = "") -> np.ndarray:
        """Weight blob ``i`` as float32, reshaped to ``shape`` (its element count must match)."""
        b = self._checked_blob(i, shape, what)
        return b.array().reshape(shape) if shape is not None else b.array()

    def blob_shape(self, i: int) -> tuple[int, ...]:
        """Blob ``i``'s shape as the caffemodel declares it (``()``: a 0-d blob)."""
        return tuple(self._checked_blob(i, None, "").shape)

    def stored_blob(self, i: int, shape: tuple[int, ...], what: str = ""):
        """Blob ``i`` for a weight used as it is: a ``StoredTensor`` (bytes left in the file)
        when the caffemodel holds it as one run of float32, else the array of ``blob``."""
        b = self._checked_blob(i, shape, what)
        where = b.file_range()
        if where is None:
            return b.array().reshape(shape)
        return StoredTensor(FileRange(b.path, *where), tuple(int(d) for d in shape))

    def _checked_blob(self, i: int, shape, what: str):
        label = f"blob {i}" + (f" ({what})" if what else "")
        if self._blobs is None:
            raise self.error(f"needs weights ({label}) but no caffemodel was given")
        if i >= len(self._blobs):
            raise self.error(
                f"missing weight {label}: the caffemodel has {len(self._blobs)} blob(s) "
                f"for this layer"
            )
        b = self._blobs[i]
        if b.shape and math.prod(b.shape) != b.count:
            # The file's own shape and data disagree: a damaged or hand-edited caffemodel.
            raise self.error(
                f"weight {label} in the caffemodel declares shape {list(b.shape)} "
                f"({math.prod(b.shape)} values) but holds {b.count} values"
            )
        if shape is not None:
            expected = math.prod(int(d) for d in shape)
            if b.count != expected:
                raise self.error(
                    f"weight {label} has {b.count} values (shape {list(b.shape)}), "
                    f"expected {expected} for shape {list(shape)}"
                )
        return b


class StoredTensor:
    """A float32 weight whose little-endian bytes are a ``FileRange`` of the caffemodel."""

    def __init__(self, where: FileRange, shape: tuple[int, ...]):
        self.where, self.shape = where, shape

    @property
    def nbytes(self) -> int:
        return len(self.where)

    def array(self) -> np.ndarray:
        return np.frombuffer(self.where.read(), dtype="<f4").reshape(self.shape)


MAX_ELEMENTS = MAX_TENSOR_ELEMENTS


def _too_big(shape) -> str:
    return f"has {math.prod(shape)} elements, more than the {MAX_ELEMENTS} any runtime can hold"


def _need_top(layer: LayerView, i: int) -> None:
    if i >= len(layer.tops):
        raise layer.error(f"expected at least {i + 1} top blob(s), got {len(layer.tops)}")


class Context:
    """Collects nodes, initializers and Caffe-side shapes while layers are converted."""

    def __init__(self, opset: int, top_names: dict[tuple[int, int], str], reserved: set[str]):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        # (name, onnx dtype, dims, raw bytes) of large weights, written straight to the file
        self.big: list[tuple[str, int, tuple[int, ...], bytes | FileRange]] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.blob_map: dict[str, str] = {}  # Caffe blob name -> current ONNX value name
        self._top_names = top_names  # (layer index, top index) -> ONNX name
        # ONNX name of a Pooling argmax mask -> (windows never overlap, the (H, W) its indices
        # address, the pooling layer's name); read by Upsample's unpooling (resize.py)
        self.pool_masks: dict[str, tuple[bool, tuple[int, int], str]] = {}
        self._used = set(reserved)
        # Caffe layers the ONNX -> Caffe writer may restore (converters/caffe/records.py)
        self.layer_records: list[dict] = []
        self.recorded_consts: set[str] = set()
        self.layer_blobs: dict[int, tuple[list[str], list]] = {}  # layer index -> weights

    # -- names -------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A value name not used anywhere in the graph, derived from ``hint``."""
        return unique_name(hint, self._used)

    def top_name(self, layer: LayerView, i: int = 0) -> str:
        _need_top(layer, i)
        return self._top_names[(layer.index, i)]

    # -- reading bottoms ---------------------------------------------------------------------
    def input(self, layer: LayerView, i: int = 0) -> str:
        if i >= len(layer.bottoms):
            raise layer.error(f"expected at least {i + 1} bottom blob(s), got {len(layer.bottoms)}")
        blob = layer.bottoms[i]
        if blob not in self.blob_map:
            raise layer.error(f"bottom blob '{blob}' is not produced by any earlier layer or input")
        return self.blob_map[blob]

    def inputs(self, layer: LayerView) -> list[str]:
        return [self.input(layer, i) for i in range(len(layer.bottoms))]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def in_shape(self, layer: LayerView, i: int = 0) -> tuple[int, ...]:
        return self.shapes[self.input(layer, i)]

    def in_shape4(self, layer: LayerView, i: int = 0) -> tuple[int, int, int, int]:
        """Bottom ``i``'s shape, which must be 4-D ``(N, C, H, W)`` (spatial layers)."""
        shape = self.in_shape(layer, i)
        if len(shape) != 4:
            raise layer.error(
                f"expected a 4-D (N, C, H, W) bottom, got '{layer.bottoms[i]}' with shape "
                f"{list(shape)}"
            )
        return shape

    # -- writing tops ------------------------------------------------------------------------
    def set_top(self, layer: LayerView, i: int, name: str, shape) -> None:
        """Declare that top ``i`` of ``layer`` is ONNX value ``name`` with Caffe shape ``shape``.

        A ``str`` dimension is data-dependent (DetectionOutput's row count): it becomes a named
        ONNX dimension and is left out of the shape-inference check."""
        _need_top(layer, i)
        shape = tuple(d if isinstance(d, str) else int(d) for d in shape)
        if any(not isinstance(d, str) and d <= 0 for d in shape):
            raise layer.error(f"output shape {list(shape)} has a non-positive dimension")
        if math.prod(d for d in shape if not isinstance(d, str)) > MAX_ELEMENTS:
            raise layer.error(f"output shape {list(shape)} {_too_big(shape)}")
        self.shapes[name] = shape
        self.blob_map[layer.tops[i]] = name

    def define_input(self, blob: str, shape, where: str = "") -> str:
        """A graph input; ``where`` (the file, or the layer) prefixes errors."""
        shape = tuple(int(d) for d in shape)
        if math.prod(d for d in shape if not isinstance(d, str)) > MAX_ELEMENTS:
            raise ConversionError(
                f"{where}: input '{blob}': shape {list(shape)} {_too_big(shape)}; "
                f"give --input-shape {blob}=N,C,H,W"
            )
        self._used.add(blob)
        self.blob_map[blob] = blob
        self.shapes[blob] = shape
        return blob

    # -- emitting ----------------------------------------------------------------------------
    def const(self, hint: str, value, dtype=np.float32) -> str:
        name = self.fresh(hint)
        if isinstance(value, StoredTensor):
            if value.nbytes > BIG_TENSOR:  # copied file to file when saved, never read here
                self.big.append((name, TensorProto.FLOAT, value.shape, value.where))
                return name
            value = value.array()
        arr = np.asarray(value, dtype=dtype)
        if arr.nbytes > BIG_TENSOR:
            dt = helper.np_dtype_to_tensor_dtype(arr.dtype)
            self.big.append((name, dt, arr.shape, raw_bytes(arr)))
        else:
            self.initializers.append(tensor_from_array(name, arr))
        return name

    def ints(self, hint: str, values) -> str:
        return self.const(hint, np.asarray(values, dtype=np.int64), dtype=np.int64)

    def node(self, op: str, inputs, output: str | None = None, *, hint: str = "", **attrs) -> str:
        """Emit one single-output node; returns its output name (fresh unless given)."""
        out = output or self.fresh(hint or op.lower())
        self._used.add(out)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def node_multi(self, op: str, inputs, outputs: list[str], **attrs) -> list[str]:
        self._used.update(outputs)
        self.nodes.append(helper.make_node(op, list(inputs), outputs, name=outputs[0], **attrs))
        return outputs

    # -- opset-dependent helpers -------------------------------------------------------------
    def reshape(self, x: str, shape, output: str | None = None, hint: str = "") -> str:
        return self.node("Reshape", [x, self.ints(f"{hint or x}/shape", shape)], output, hint=hint)

    def reduce(self, op: str, x: str, axes, keepdims: bool = True, output=None, hint="") -> str:
        """ReduceXxx over ``axes``; opset 18 moved ``axes`` from an attribute to an input."""
        axes = [int(a) for a in axes]
        if self.opset >= 18 or op == "ReduceSum":
            ax = self.ints(f"{hint or x}/axes", axes)
            return self.node(op, [x, ax], output, hint=hint, keepdims=int(keepdims))
        return self.node(op, [x], output, hint=hint, axes=axes, keepdims=int(keepdims))

    def split(self, x: str, axis: int, sizes, outputs: list[str]) -> list[str]:
        """Split along ``axis`` into pieces of ``sizes``; ``split`` is an input since opset 13."""
        return self.node_multi(
            "Split", [x, self.ints(f"{outputs[0]}/split", sizes)], outputs, axis=axis
        )

    def slice(self, x: str, starts, ends, axes, output=None, hint="", steps=None) -> str:
        ins = [
            x,
            self.ints(f"{hint or x}/starts", starts),
            self.ints(f"{hint or x}/ends", ends),
            self.ints(f"{hint or x}/axes", axes),
        ]
        if steps is not None:
            ins.append(self.ints(f"{hint or x}/steps", steps))
        return self.node("Slice", ins, output, hint=hint)

    def unsqueeze(self, x: str, axes, output=None, hint="") -> str:
        return self.node("Unsqueeze", [x, self.ints(f"{hint or x}/axes", axes)], output, hint=hint)
