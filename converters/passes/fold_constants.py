"""fold_constants: a node whose result is known at conversion time becomes an initializer.

Known results: every input is a constant (an initializer that no graph input overrides), or
the node is ``Shape``/``Size`` of a value whose static shape ONNX shape inference gives
(``Shape(x)[start:end]``, ``Size(x) = prod(shape(x))``). The value is computed by onnx's
reference evaluator (``onnx.reference``, kept with the ONNX spec itself) on a one-node model of
the same opset; the output keeps its name, so readers are untouched. A ``Constant`` node is
folded into the initializer it denotes. Repeated to a fixed point, whole shape-arithmetic
chains (``Shape -> Gather -> Mul -> Concat -> Reshape``) collapse.

Refused: random ops (``RandomNormal*``, ``RandomUniform*``, ``Bernoulli``, ``Multinomial``),
ops with subgraphs or outside the default domain, a result that is a graph output, and a result
with more than 65,536 elements that is larger than all its inputs together (``Expand`` or
``ConstantOfShape`` of a big shape would grow the file instead of shrinking the graph).

Kept as they are: the readers of a constant the Caffe -> ONNX conversion recorded as a Caffe
layer's top (the SSD priors, ``converters/caffe/records.py``). Folding through them would
leave the ONNX -> Caffe writer no prior constant to check against its PriorBox layers; the
price is a few tiny ops (a reshape and slices of the priors) per run.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from converters.passes.graph import Graph, Rule, attr

RANDOM = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
     "Multinomial"}
)  # fmt: skip
MAX_GROWTH = 1 << 16


def _static_shape(g: Graph, name: str) -> list[int] | None:
    shape = g.shape(name)
    if shape is None or any(d is None for d in shape):
        return None
    return shape


class FoldConstants(Rule):
    name = "fold_constants"

    def match(self, g):
        if "recorded_consts" not in g.scratch:
            g.scratch["recorded_consts"] = _recorded_consts(g.model)
        kept = g.scratch["recorded_consts"]
        for node in g.nodes:
            if node.domain not in ("", "ai.onnx") or node.op_type in RANDOM:
                continue
            if kept and any(i in kept for i in node.input):
                continue
            if (
                node.op_type in ("Shape", "Size") and _static_shape(g, node.input[0]) is not None
            ) or all(g.is_const(i) for i in node.input if i):
                yield node

    def check(self, g, node):
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute):  # fmt: skip
            return "has a subgraph"
        outs = [o for o in node.output if o in g.outputs]
        if outs:
            return f"its output '{outs[0]}' is a graph output"
        try:
            results = _evaluate(g, node)
        except Exception as exc:
            return f"cannot evaluate it at conversion time ({type(exc).__name__}: {exc})"
        given = sum(int(np.prod(g.inits[i].dims)) for i in node.input if i in g.inits)
        big = max((r.size for r in results), default=0)
        if node.op_type not in ("Constant", "Shape", "Size") and big > max(MAX_GROWTH, given):
            return f"its result has {big} elements from {given}: folding would grow the file"
        g.scratch[id(node)] = results
        return None

    def rewrite(self, g, node):
        # The round in which a sweep-by-sweep fixed point (each sweep matching on the graph as
        # it was when the sweep began) would fold this node: its folded results are written in
        # that order, so the file does not depend on folding a chain in one sweep or several.
        rounds = g.scratch.setdefault("fold_round", {})
        if node.op_type in ("Shape", "Size") and _static_shape(g, node.input[0]) is not None:
            r = 1
        else:
            r = 1 + max((rounds.get(i, 0) for i in node.input if i), default=0)
        for name, value in zip(node.output, g.scratch.pop(id(node)), strict=False):
            if name:
                g.add_const(name, np.asarray(value), exact=True, rank=r)
                rounds[name] = r
        g.remove(node)


def _recorded_consts(model) -> frozenset[str]:
    from converters.caffe import records

    return frozenset(t for r in records.read(model) if r.get("const")
                     for t in records.tops(r))  # fmt: skip


def _evaluate(g: Graph, node) -> list[np.ndarray]:
    if node.op_type in ("Shape", "Size") and _static_shape(g, node.input[0]) is not None:
        shape = _static_shape(g, node.input[0])
        if node.op_type == "Size":
            return [np.array(math.prod(shape), dtype=np.int64)]
        start, end = attr(node, "start", 0), attr(node, "end", len(shape))
        return [np.array(shape[start:end], dtype=np.int64)]
    from onnx.reference import ReferenceEvaluator

    feeds = {i: g.const(i) for i in node.input if i}
    inputs = [helper.make_tensor_value_info(i, onnx.TensorProto.UNDEFINED, None) for i in feeds]
    outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
               for o in node.output if o]  # fmt: skip
    model = helper.make_model(
        helper.make_graph([node], "fold", inputs, outputs),
        opset_imports=[helper.make_opsetid("", g.opset)],
    )
    return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]


RULE = FoldConstants()
