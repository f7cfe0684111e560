"""The view of one ONNX node handlers read, and the builder of Caffe layers they emit into.

Naming: every ONNX value a handler produces becomes a Caffe blob of the *same* name, and the
layer writing it is named after it too. OpenCV addresses outputs by layer name (and names
some layers after their top), so a graph output ``scores`` is both blob and layer ``scores``.
Layers a handler adds in between get fresh names derived from the output (``out/bn``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import helper

from converters.caffe.proto import caffe_pb2
from converters.errors import UnsupportedError
from converters.names import unique_name


class NodeView:
    """One ONNX node: inputs/outputs (``None`` for an omitted optional one), attributes, errors."""

    def __init__(self, proto, opset: int):
        self.proto = proto
        self.op: str = proto.op_type
        self.name: str = proto.name or (proto.output[0] if proto.output else "?")
        self.inputs: list[str | None] = [i or None for i in proto.input]
        self.outputs: list[str | None] = [o or None for o in proto.output]
        self.opset = opset
        self.attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}

    def attr(self, name: str, default=None):
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def input(self, i: int) -> str | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def error(self, reason: str) -> UnsupportedError:
        return UnsupportedError(f"Caffe export: node '{self.name}' ({self.op}): {reason}")


@dataclass
class PendingPad:
    """A constant ``Pad`` waiting to be merged into the pads of the Conv/Pool that reads it."""

    node: NodeView
    source: str  # the ONNX value that was padded
    begin: tuple[int, int]  # (top, left)
    end: tuple[int, int]  # (bottom, right)
    value: float
    merged_into: set[str] = field(default_factory=set)  # names of the nodes that absorbed it


class Context:
    """Shapes and constants of the ONNX graph, plus the Caffe layers emitted so far."""

    def __init__(self, opset: int, shapes, consts, names: set[str]):
        self.opset = opset
        self.shapes: dict[str, tuple[int, ...]] = shapes
        self.consts: dict[str, np.ndarray] = consts
        self.layers: list[tuple[caffe_pb2.LayerParameter, list[np.ndarray]]] = []
        self.pads: dict[str, PendingPad] = {}
        self.consumers: dict[str, list[NodeView]] = {}
        self._blob: dict[str, str] = {}  # ONNX value -> Caffe blob holding it
        self._used = set(names)  # every ONNX value name, plus names given out since
        self._layer_names: set[str] = set()
        self.input_names: set[str] = set()

    # -- reading -----------------------------------------------------------------------------
    def shape(self, node: NodeView, value: str) -> tuple[int, ...]:
        if value not in self.shapes:
            raise node.error(f"the shape of '{value}' is unknown or not static")
        return self.shapes[value]

    def in_shape(self, node: NodeView, i: int = 0) -> tuple[int, ...]:
        return self.shape(node, node.inputs[i])

    def out_shape(self, node: NodeView, i: int = 0) -> tuple[int, ...]:
        return self.shape(node, node.outputs[i])

    def is_const(self, value: str | None) -> bool:
        return value is not None and value in self.consts

    def const(self, node: NodeView, i: int, what: str) -> np.ndarray:
        """Input ``i`` as a constant array; Caffe needs weights and parameters known now."""
        value = node.input(i)
        if value is None or value not in self.consts:
            raise node.error(f"{what} (input {i} '{value}') must be a constant for Caffe")
        return self.consts[value]

    def optional_const(self, node: NodeView, i: int, what: str) -> np.ndarray | None:
        return None if node.input(i) is None else self.const(node, i, what)

    def bottom(self, node: NodeView, i: int = 0) -> str:
        """The Caffe blob holding data input ``i``."""
        value = node.input(i)
        if value is None:
            raise node.error(f"input {i} is missing")
        return self.blob(node, value)

    def blob(self, node: NodeView, value: str) -> str:
        """The Caffe blob holding ONNX ``value`` (read by ``node``)."""
        if value in self.pads:
            raise node.error(f"reads the output of Pad '{self.pads[value].node.name}', which "
                             f"Caffe can only express merged into a Conv or pooling")  # fmt: skip
        if value in self._blob:
            return self._blob[value]
        if value in self.consts:
            raise node.error(f"input '{value}' is a constant tensor; Caffe has no constant layer")
        raise node.error(f"input '{value}' is not produced by any converted node")

    def has_blob(self, value: str) -> bool:
        return value in self._blob

    def blob_of(self, value: str) -> str | None:
        return self._blob.get(value)

    def writer(self, blob: str) -> caffe_pb2.LayerParameter | None:
        """The last layer emitted so far whose top is ``blob``."""
        for layer, _ in reversed(self.layers):
            if blob in layer.top:
                return layer
        return None

    def unpad(self, node: NodeView, i: int = 0):
        """``(value, begin, end, pad_value)`` for data input ``i``: a pending Pad's input and
        pads (merged into ``node``), or the input itself with zero pads."""
        value = node.input(i)
        pad = self.pads.get(value)
        if pad is None:
            return value, (0, 0), (0, 0), 0.0
        pad.merged_into.add(node.name)
        return pad.source, pad.begin, pad.end, pad.value

    # -- names -------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        return unique_name(hint, self._used)

    # -- writing -----------------------------------------------------------------------------
    def define(self, value: str, blob: str | None = None) -> None:
        """ONNX ``value`` is held by Caffe blob ``blob`` (itself by default)."""
        self._blob[value] = blob or value

    def alias(self, node: NodeView, i: int, blob: str) -> None:
        """Output ``i`` is the very same tensor as ``blob`` (Identity, Dropout, a no-op Reshape)."""
        if node.outputs[i] is not None:
            self._blob[node.outputs[i]] = blob

    def add_layer(self, type_name: str, bottoms, tops, blobs=(), name: str | None = None):
        """Append a layer; returns its ``LayerParameter`` for the handler to fill its params."""
        layer = caffe_pb2.LayerParameter(type=type_name, bottom=list(bottoms), top=list(tops))
        name = name or tops[0]
        if name in self._layer_names:
            name = self.fresh(name)
        self._layer_names.add(name)
        layer.name = name
        for top in tops:
            self._used.add(top)
            self._blob.setdefault(top, top)
        arrays = [np.ascontiguousarray(b, dtype=np.float32) for b in blobs]
        self.layers.append((layer, arrays))
        return layer

    def rename_blob(self, old: str, new: str) -> str:
        """Rename Caffe blob ``old`` (and the layer named after it) everywhere."""
        for layer, _ in self.layers:
            layer.bottom[:] = [new if b == old else b for b in layer.bottom]
            layer.top[:] = [new if t == old else t for t in layer.top]
            if layer.name == old:
                layer.name = new
                self._layer_names.discard(old)
                self._layer_names.add(new)
        return new
