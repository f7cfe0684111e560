"""Small ONNX facts every converter and pass needs, each written once.

Neutral ground: this module imports nothing of zoomake but ``converters.errors``, so the Caffe
reader, the Caffe writer, the PyTorch writer, the passes and ``pipelines`` can all use it
without an arrow back up the house.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from converters.errors import ConversionError

# ONNX ops whose result is not a pure function of their inputs: never folded at conversion time,
# and kept in float32 by the fp16 conversion (halving a seeded generator changes its stream).
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
     "Multinomial"}
)  # fmt: skip

DEFAULT_DOMAINS = ("", "ai.onnx")


def model_opset(model: onnx.ModelProto) -> int | None:
    """The version of the default-domain ONNX opset ``model`` imports; None if it imports none."""
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)


def require_opset(model: onnx.ModelProto, where: str) -> int:
    """``model_opset``, or one error line when the model imports no default-domain opset."""
    opset = model_opset(model)
    if opset is None:
        raise ConversionError(f"{where}: the model imports no default-domain ONNX opset")
    return opset


def convert_opset(model: onnx.ModelProto, opset: int, where: str = "") -> onnx.ModelProto:
    """``model`` converted to ``opset`` by onnx's version converter (a no-op at its own opset),
    stamped with the lowest IR version that opset needs: exporters often stamp IR versions newer
    than the runtimes we deploy to accept, although nothing in the model needs them."""
    current = model_opset(model)
    if current != opset:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, opset)
        except Exception as exc:  # the converter raises bare RuntimeErrors, names no type
            lines = str(exc).strip().splitlines()
            first = lines[0] if lines else type(exc).__name__
            prefix = f"{where}: " if where else ""
            raise ConversionError(
                f"{prefix}cannot convert the model from opset {current} to {opset}: {first}"
            ) from None
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    return model


def light_copy(
    model: onnx.ModelProto, limit: int = 1 << 16, *, fixed_weights: bool = False
) -> onnx.ModelProto:
    """The model with large (or external) initializers turned into graph inputs of the same
    type and shape, without their bytes: what shape inference and the checker need, without
    serializing hundreds of megabytes of weights. Small initializers (``limit`` bytes or less)
    keep their values, because shape arithmetic (``Reshape``'s shape, ``Resize``'s scales)
    reads them. The big ones are appended to the inputs, after the real ones, in initializer
    order. The caller's model is untouched (the node and value lists are copied).

    An initializer that is also a graph input is, by default, only a default value the caller
    may override: the copy keeps the input and drops the value. ``fixed_weights=True`` treats
    it as a constant instead (the Caffe export bakes every weight into the file).
    """
    g = model.graph
    weights = {t.name for t in g.initializer}
    names = {v.name for v in g.input}
    light = onnx.ModelProto(
        ir_version=max(model.ir_version, 4),  # initializers outside the inputs need IR >= 4
        producer_name=model.producer_name,
        opset_import=model.opset_import,
        functions=model.functions,
    )
    lg = light.graph
    lg.name = g.name
    lg.node.extend(g.node)
    lg.input.extend(v for v in g.input if not (fixed_weights and v.name in weights))
    lg.output.extend(g.output)
    for t in g.initializer:
        if t.name in names and not fixed_weights:
            continue
        # sized without copying the bytes out of protobuf; external ones have theirs elsewhere
        if t.ByteSize() > limit or t.data_location == onnx.TensorProto.EXTERNAL:
            lg.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            lg.initializer.append(t)
    return light


def _graph_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes):
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sparse in [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []:
                yield from (sparse.values, sparse.indices)
            for sparse in attr.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            for sub in [attr.g] if attr.HasField("g") else []:
                yield from _graph_tensors(sub)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def all_tensors(model: onnx.ModelProto):
    """Every ``TensorProto`` of ``model``: the graph's initializers (sparse ones: their values
    and indices), those of every subgraph (If/Loop/Scan bodies), and the tensors in node
    attributes, of the graphs and of the model's functions."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        yield from _node_tensors(function.node)


def static_shape_value(op: str, shape, start: int = 0, end: int | None = None) -> np.ndarray:
    """``Shape(x)[start:end]`` or ``Size(x)`` of a tensor of static ``shape`` (ONNX spec: int64;
    ``start``/``end`` are clamped and may be negative, like a Python slice)."""
    shape = [int(d) for d in shape]
    if op == "Size":
        return np.array(math.prod(shape), dtype=np.int64)
    return np.array(shape[start : len(shape) if end is None else end], dtype=np.int64)


def evaluate_node(node: onnx.NodeProto, feeds: dict, opset: int) -> list[np.ndarray]:
    """``node``'s outputs for the constant inputs ``feeds`` (by name), computed by onnx's
    reference evaluator (kept with the ONNX spec itself) at ``opset``."""
    from onnx.reference import ReferenceEvaluator

    return [np.asarray(r) for r in ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)]
