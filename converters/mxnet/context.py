"""State of one ONNX -> MXNet conversion: static shapes, constants, and the symbol being built."""

from __future__ import annotations

import numpy as np

from converters.errors import UnsupportedError
from converters.mxnet.symbol import Graph, Ref
from converters.onnx2caffe.context import NodeView


class MxNode(NodeView):
    """An ONNX node as the handlers see it (``onnx2caffe``'s view, MXNet's error prefix)."""

    def error(self, reason: str) -> UnsupportedError:
        return UnsupportedError(f"MXNet export: node '{self.name}' ({self.op}): {reason}")


class Context:
    def __init__(self, opset: int, shapes, consts, outputs: list[str]):
        self.opset = opset
        self.shapes: dict[str, tuple[int, ...]] = shapes
        self.consts: dict[str, np.ndarray] = consts
        self.graph = Graph()
        self.graph.reserve(outputs)  # kept free for the nodes that produce them
        self.outputs = set(outputs)
        self.refs: dict[str, Ref] = {}

    # -- reading -----------------------------------------------------------------------------
    def shape(self, node: MxNode, value: str) -> tuple[int, ...]:
        if value not in self.shapes:
            raise node.error(f"the shape of '{value}' is unknown or not static")
        return self.shapes[value]

    def in_shape(self, node: MxNode, i: int = 0) -> tuple[int, ...]:
        return self.shape(node, node.inputs[i])

    def out_shape(self, node: MxNode, i: int = 0) -> tuple[int, ...]:
        return self.shape(node, node.outputs[i])

    def is_const(self, node: MxNode, i: int) -> bool:
        value = node.input(i)
        return value is not None and value in self.consts

    def const(self, node: MxNode, i: int, what: str) -> np.ndarray:
        if not self.is_const(node, i):
            raise node.error(f"{what} (input {i} '{node.input(i)}') must be a constant")
        return np.asarray(self.consts[node.input(i)])

    def optional_const(self, node: MxNode, i: int, what: str):
        return None if node.input(i) is None else self.const(node, i, what)

    def sym(self, node: MxNode, i: int = 0) -> Ref:
        """The MXNet value of data input ``i``; a constant becomes a weight (``arg:``)."""
        value = node.input(i)
        if value is None:
            raise node.error(f"input {i} is missing")
        if value in self.refs:
            return self.refs[value]
        if value in self.consts:
            arr = np.asarray(self.consts[value])
            if arr.dtype != np.float32:
                raise node.error(f"constant input '{value}' has dtype {arr.dtype}; MXNet "
                                 "data constants are float32 here")  # fmt: skip
            self.refs[value] = self.weight(value, arr)
            return self.refs[value]
        raise node.error(f"input '{value}' is not produced by any converted node")

    # -- writing -----------------------------------------------------------------------------
    def weight(self, hint: str, value: np.ndarray, aux: bool = False) -> Ref:
        return self.graph.variable(hint, np.asarray(value), aux=aux)

    def op(self, op: str, inputs: list[Ref], attrs: dict | None = None, hint: str = "",
           n_out: int = 1) -> Ref:  # fmt: skip
        return self.graph.op(op, inputs, attrs, hint, n_out)[0]

    def out(self, node: MxNode, op: str, inputs: list[Ref], attrs: dict | None = None,
            n_out: int = 1) -> list[Ref]:  # fmt: skip
        """The node computing the ONNX node's outputs, named after its first one."""
        first = node.outputs[0] or node.name
        refs = self.graph.op(op, inputs, attrs, first, n_out, exact=n_out == 1)
        for value, ref in zip(node.outputs, refs, strict=False):
            if value is not None:
                self.refs[value] = ref
        return refs

    def alias(self, node: MxNode, i: int = 0) -> None:
        """Output 0 is the very same tensor as input ``i`` (Identity, Dropout, no-op Reshape)."""
        self.refs[node.outputs[0]] = self.sym(node, i)

    def bind(self, node: MxNode, ref: Ref, k: int = 0) -> None:
        self.refs[node.outputs[k]] = ref
