"""Make an ONNX graph ready for layer-by-layer conversion: static shapes and folded constants.

Caffe has no shape arithmetic and no constant layers: a ``Reshape`` target, a ``Resize`` scale or
a ``Clip`` bound must be known when the prototxt is written. Exporters compute such values with
small subgraphs (``Shape -> Gather -> Unsqueeze -> Concat``); with static input shapes those
subgraphs only depend on constants, so they are evaluated here with ONNX's reference
implementation and never reach a handler.
"""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from converters.errors import ConversionError
from converters.onnx2caffe.context import NodeView
from converters.onnx_utils import RANDOM_OPS, evaluate_node, light_copy, static_shape_value

# Never folded: their value is not a pure function of their inputs.
_NOT_FOLDABLE = RANDOM_OPS | {"If", "Loop", "Scan"}


def infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """A shape-inferred copy of the graph, leaving the caller's model untouched.

    Shape inference serializes the whole model; weights are large and their values do not
    matter to it, so big initializers become typed graph inputs in the copy (listed after the
    real inputs). Small ones keep their values: shape arithmetic reads them.
    """
    light = light_copy(model, fixed_weights=True)  # every weight is a constant of the export
    light.graph.value_info.extend(model.graph.value_info)
    try:
        return onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"Caffe export: ONNX shape inference failed: {first}") from None


def real_inputs(inferred: onnx.ModelProto, model: onnx.ModelProto) -> list:
    """The graph inputs a caller feeds (not the weights ``infer`` turned into inputs)."""
    weights = {t.name for t in model.graph.initializer}
    return [vi for vi in inferred.graph.input if vi.name not in weights]


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    g = model.graph
    shapes = {t.name: tuple(t.dims) for t in g.initializer}
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if all(d >= 0 for d in dims):
            shapes[vi.name] = tuple(dims)
    return shapes


def fold_constants(nodes: list[NodeView], shapes, opset: int, consts: dict) -> dict:
    """Add to ``consts`` (the initializers) every value computable now: Constant nodes' and
    whatever only reads constants or the shape of a static tensor."""
    for node in nodes:
        ins = [i for i in node.inputs if i is not None]
        if node.op in ("Shape", "Size") and ins and ins[0] in shapes:
            start, end = node.attr("start", 0), node.attr("end")
            result = [static_shape_value(node.op, shapes[ins[0]], start, end)]
        elif node.op in _NOT_FOLDABLE or not all(i in consts for i in ins):
            continue
        else:
            try:
                result = evaluate_node(node.proto, {i: consts[i] for i in ins}, opset)
            except Exception:  # not computable now: the node stays and its handler decides
                continue
        for name, value in zip(node.outputs, result, strict=False):
            if name is not None:
                consts[name] = value
                shapes[name] = tuple(value.shape)
    return consts


def initializer_consts(model: onnx.ModelProto) -> dict:
    consts = {}
    for t in model.graph.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except (ValueError, TypeError) as exc:  # data length vs dims, unknown data type
            raise ConversionError(
                f"Caffe export: initializer '{t.name}' (dims {list(t.dims)}) does not hold "
                f"data of its declared shape and type: {exc}"
            ) from None
    return consts


def live_nodes(nodes: list[NodeView], outputs: list[str]) -> list[NodeView]:
    """The nodes some graph output depends on, in graph order (dead branches are skipped)."""
    needed = set(outputs)
    live = []
    for node in reversed(nodes):
        if any(o in needed for o in node.outputs if o):
            live.append(node)
            needed.update(i for i in node.inputs if i)
    return live[::-1]
