"""float32 -> float16 conversion of an ONNX model (``precision: fp16`` targets, ``--fp16``).

Our own converter rather than onnxconverter-common's ``convert_float_to_float16``, because of
its known traps: it clamps every weight beyond +-1e4 (and tiny ones to 1e-7) with only a
warning, blocks whole ops (Resize, Range, Min/Max, TopK ...) by a fixed list and wraps each in
a Cast pair, which leaves Cast->Cast chains between neighbouring blocked ops, and it would be
one more dependency. Where both apply they agree: on UltraFace RFB-320 both give bit-identical
outputs (measured with onnxconverter-common 1.16). Here:

* Each node runs in float16 or float32. Float32 is forced for ops with integer/accumulation
  semantics or dtype attributes (``FP32_OPS``), non-default domains and nodes with subgraphs,
  for *decisions*: the ops that rank or select by value (``DECISION_OPS``: TopK, NMS) and every
  node whose float result feeds them or another *precision sink* (Resize roi/scales, Upsample
  scales, a Cast to an integer or bool type, a value read inside a subgraph such as a Loop's).
  That region is found by walking back from the sinks through the producing nodes (through
  comparisons and logic: a bool read by a Loop is a decision on floats), stopping at
  Casts (shape arithmetic stays float32 end to end) and at the weight layers (``WEIGHT_OPS``:
  Conv, Gemm, MatMul): a detector's loc/conf head convolutions compute in float16 and their
  outputs are cast up, so the backbone stays float16 while box decoding, the score
  threshold, sorting and NMS see float32 (float16 there would merge near-equal scores and move
  boxes by 1/2048 of the image). Sums of squares (ReduceSumSquare, ReduceL2, or ReduceSum /
  ReduceMean of ``Pow(x, 2)`` / ``Mul(x, x)``: Normalize, L2-norm layers) are float32 too:
  in float16 they overflow beyond 65504 and lose small epsilons. Finally a node that reads no
  float16-computed value but one from a float32 node stays float32 (the tail after a decision:
  casting a detector's output rows down would round scores by up to 4.9e-4).
* Per input, the op schema of the model's opset decides the type: a type constraint without
  ``tensor(float16)`` keeps float32; a constraint used by that input alone (Cast's, Shape's)
  takes whatever arrives. A mismatch gets one shared Cast per value and type.
* Float initializers and Constant values go to float16 only where read as float16 (a float32
  copy stays for float32 readers). A finite value beyond float16's range (|x| > 65504) raises
  ConversionError naming every such weight and its max |x| -- never clamped.
* With ``keep_io_types`` graph inputs and outputs stay float32 (a Cast at each boundary).
* Finally Cast->Cast pairs are collapsed where exact (the first Cast loses nothing, e.g.
  uint8->float32->float16 == uint8->float16) or where the second is one of ours narrowing to
  float16; the opset stays, and ``onnx.checker`` (full, strict shape inference) must pass.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from converters.errors import ConversionError
from converters.lazy import as_float16, data, is_placeholder, max_abs_finite, tensor_array
from converters.onnx_utils import RANDOM_OPS, light_copy, require_opset
from converters.passes.graph import check_graph, subgraph_names

F32, F16 = TP.FLOAT, TP.FLOAT16
FP16_MAX = 65504.0
FP32_OPS = RANDOM_OPS | {"Range", "CumSum", "EyeLike"}
SINK_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}  # roi / scales: coordinates, not data
# Ops that decide by value (rank, select, suppress): float32, and so is what their inputs
# come from, back to the weight layers.
DECISION_OPS = {"TopK", "NonMaxSuppression"}
WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}  # the float32 walk stops at them
SUM_OF_SQUARES = {"ReduceSumSquare", "ReduceL2"}
SUM_OPS = {"ReduceSum", "ReduceMean"}  # a sum of squares when reading Pow(x, 2) or Mul(x, x)
# Casts that lose nothing: source type -> types that hold every value of it exactly.
EXACT = {TP.UINT8: {TP.INT16, TP.INT32, TP.INT64, F16, F32, TP.DOUBLE},
         TP.INT8: {TP.INT16, TP.INT32, TP.INT64, F16, F32, TP.DOUBLE},
         TP.BOOL: {TP.UINT8, TP.INT8, TP.INT32, TP.INT64, F16, F32, TP.DOUBLE},
         F16: {F32, TP.DOUBLE}, F32: {TP.DOUBLE}}  # fmt: skip


def _formal(schema, params, i):
    """(type constraint allows float16, the constraint is used by this parameter only)."""
    if not params:
        return False, False
    p = params[min(i, len(params) - 1)]
    allowed = next(
        (c.allowed_type_strs for c in schema.type_constraints if c.type_param_str == p.type_str),
        [p.type_str],
    )
    shared = [q for q in list(schema.inputs) + list(schema.outputs) if q.type_str == p.type_str]
    return "tensor(float16)" in allowed, len(shared) == 1 and len(allowed) > 1


def _elem_types(model) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(light_copy(model))
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise ConversionError(f"fp16: cannot infer the model's tensor types ({exc})") from None
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


class _Plan:
    """Node precisions and value types for one model (steps 1 and 2 of the conversion)."""

    def __init__(self, g, nodes, types, opset, keep_io_types):
        self.types = types
        self.inits = {t.name: t for t in g.initializer}
        self.outputs = {o.name for o in g.output}
        self.schemas = {}
        for n in nodes:
            if n.domain in ("", "ai.onnx") and n.op_type not in self.schemas:
                try:
                    self.schemas[n.op_type] = onnx.defs.get_schema(n.op_type, opset, "")
                except onnx.defs.SchemaError:
                    self.schemas[n.op_type] = None
        self.fp32 = {id(n) for n in nodes
                     if n.domain not in ("", "ai.onnx") or n.op_type in FP32_OPS
                     or self.schemas.get(n.op_type) is None or subgraph_names(n)
                     or n.op_type in DECISION_OPS}  # fmt: skip
        self._sums_of_squares(g, nodes)
        self._walk_back_from_sinks(nodes)
        self._float32_downstream(g, nodes)
        self.readers: dict[str, list] = {}
        for n in nodes:
            for i, v in enumerate(n.input):
                if v and types.get(v) == F32:
                    self.readers.setdefault(v, []).append(self.wants(n, i, "in"))
        graph_inputs = {v.name for v in g.input}
        self.stored = {v: F32 for v in graph_inputs if types.get(v) == F32}
        if not keep_io_types:
            self.stored.update({v: F16 for v in self.stored if v not in self.inits})
        for n in nodes:
            for j, o in enumerate(n.output):
                if o and types.get(o) == F32:
                    self.stored[o] = F16 if self._output_fp16(n, j, o) else F32
        for name, t in self.inits.items():
            if t.data_type == F32 and name not in graph_inputs:
                wanted = self.readers.get(name, [])
                self.stored[name] = F16 if wanted and set(wanted) == {F16} else F32

    def _walk_back_from_sinks(self, nodes):
        producer = {o: n for n in nodes for o in n.output if o}
        sinks = {v for n in nodes for v in subgraph_names(n)}
        for n in nodes:
            if n.op_type in DECISION_OPS:
                sinks.update(n.input)
            sinks.update(n.input[i] for i in SINK_INPUTS.get(n.op_type, ()) if i < len(n.input))
            if n.op_type == "Cast" and _attr(n, "to") not in (F16, F32):
                sinks.add(n.input[0])
        stack = [v for v in sinks if v]
        while stack:
            p = producer.get(stack.pop())
            if p is None or id(p) in self.fp32 or p.op_type in WEIGHT_OPS:
                continue
            self.fp32.add(id(p))  # a Cast stays float32 too, but what it reads is another type
            if p.op_type != "Cast":  # through comparisons too: a bool is a decision on floats
                stack.extend(i for i in p.input if i and self.types.get(i) in (F32, TP.BOOL))

    def _sums_of_squares(self, g, nodes):
        """Sums of squares (and the square they sum) compute in float32."""
        producer = {o: n for n in nodes for o in n.output if o}
        consts = {t.name: t for t in g.initializer}
        consts.update({n.output[0]: n for n in nodes if n.op_type == "Constant" and n.output})
        for n in nodes:
            if n.op_type in SUM_OF_SQUARES:
                self.fp32.add(id(n))
            elif n.op_type in SUM_OPS and _is_square(producer.get(n.input[0]), consts):
                self.fp32.update((id(n), id(producer[n.input[0]])))

    def _float32_downstream(self, g, nodes):
        """A node reading float values only from float32 nodes (none computed in float16)
        stays float32: nodes are in topological order, so one pass settles it."""
        producer = {o: n for n in nodes for o in n.output if o}
        inits = {t.name for t in g.initializer}
        half: dict[str, bool] = {}  # float value -> computed (somewhere above) in float16

        def is_half(v):
            if v in half:
                return half[v]
            p = producer.get(v)
            return p is None and v not in inits  # a graph input is data for float16 nodes

        for n in nodes:
            floats = [v for v in n.input if v and self.types.get(v) == F32]
            if (id(n) not in self.fp32 and n.op_type not in ("Cast", "Constant")
                    and any(id(producer[v]) in self.fp32 for v in floats if v in producer)
                    and not any(is_half(v) for v in floats)):  # fmt: skip
                self.fp32.add(id(n))
            computes_half = id(n) not in self.fp32 and any(is_half(v) for v in floats)
            for o in n.output:
                half[o] = computes_half

    def wants(self, n, i: int, kind: str) -> int | None:
        """F16 or F32 for a float input/output of ``n``; None: it takes what arrives."""
        schema = self.schemas.get(n.op_type)
        if schema is None:
            return F32
        ok16, free = _formal(schema, schema.inputs if kind == "in" else schema.outputs, i)
        if free:
            return None
        return F16 if ok16 and id(n) not in self.fp32 else F32

    def _output_fp16(self, n, j: int, o: str) -> bool:
        if id(n) in self.fp32 or (o in self.outputs and n.op_type in ("Cast", "Constant")):
            return False
        if n.op_type in ("Cast", "Constant"):  # float16 only if every reader wants it
            return set(self.readers.get(o, [])) - {None} == {F16}
        return self.wants(n, j, "out") == F16


def _is_square(n, consts) -> bool:
    """``Pow(x, 2)`` with a constant exponent 2, or ``Mul(x, x)``."""
    if n is None:
        return False
    if n.op_type == "Mul":
        return len(n.input) == 2 and n.input[0] == n.input[1]
    if n.op_type != "Pow" or len(n.input) != 2 or n.input[1] not in consts:
        return False
    c = consts[n.input[1]]
    t = c if isinstance(c, onnx.TensorProto) else _attr(c, "value")
    if not isinstance(t, onnx.TensorProto) or is_placeholder(t):
        return False
    arr = numpy_helper.to_array(t)
    return arr.size == 1 and float(arr.reshape(-1)[0]) == 2.0


def _attr(node, name, default=None):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def to_fp16(
    model: onnx.ModelProto, keep_io_types: bool = True, *, copy: bool = True
) -> onnx.ModelProto:
    """A float16 copy of ``model`` (see the module docstring for the rules).

    ``copy=False`` converts ``model`` itself (no second copy of its weights; a caller that
    loaded it only to convert it), and leaves it unusable if the conversion fails. A big weight
    left in its file (a ``converters.lazy`` placeholder) is range-checked now, chunk by chunk,
    and becomes a float16 placeholder converted while the file is written: the float32
    weights are never held whole and never twice.
    """
    out = model
    if copy:
        out = onnx.ModelProto()
        out.CopyFrom(model)
    return _convert(out, keep_io_types)


def _convert(out: onnx.ModelProto, keep_io_types: bool):
    """Convert ``out`` in place."""
    g = out.graph
    opset = require_opset(out, "fp16")
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in g.node]
    plan = _Plan(g, nodes, _elem_types(out), opset, keep_io_types)
    stored = plan.stored
    too_big: list[str] = []

    def half(name: str, arr: np.ndarray) -> np.ndarray:
        peak = max_abs_finite(arr.reshape(-1))
        if peak > FP16_MAX:
            too_big.append(f"'{name}' (max |x| {peak:.6g})")
            return np.zeros(arr.shape, np.float16)  # never used: the conversion will raise
        return arr.astype(np.float16)

    def halved(t: onnx.TensorProto, name: str) -> onnx.TensorProto:
        """The float16 version of initializer ``t``, named ``name``."""
        if not is_placeholder(t):
            return numpy_helper.from_array(half(t.name, tensor_array(t)), name)
        out = as_float16(t)
        peak = data(out).max_abs_finite()
        if peak > FP16_MAX:
            too_big.append(f"'{t.name}' (max |x| {peak:.6g})")
        out.name = name
        return out

    copies: dict[str, onnx.TensorProto] = {}
    casts: dict[tuple[str, int], onnx.NodeProto] = {}
    new_nodes: list[onnx.NodeProto] = []

    def as_type(v: str, t: int) -> str:
        if stored[v] == t:
            return v
        if v in plan.inits and t == F16:  # a float16 copy beside the float32 weight
            if v not in copies:
                copies[v] = halved(plan.inits[v], f"{v}__fp16")
            return copies[v].name
        if (v, t) not in casts:
            name = f"{v}__to_fp{16 if t == F16 else 32}"
            casts[(v, t)] = helper.make_node("Cast", [v], [name], name=name, to=t)
            new_nodes.append(casts[(v, t)])
        return casts[(v, t)].output[0]

    for name, t in plan.inits.items():
        if stored.get(name) == F16:
            t.CopyFrom(halved(t, name))
    for n in nodes:
        for i, v in enumerate(n.input):
            want = plan.wants(n, i, "in") if v in stored else None
            if want is not None:
                n.input[i] = as_type(v, want)
        if stored.get(n.output[0] if n.output else "") == F16:
            _retype_attributes(n, half)
        new_nodes.append(n)
    if too_big:
        raise ConversionError(
            f"fp16: weight(s) outside the float16 range (|x| <= {FP16_MAX:g}): "
            f"{', '.join(too_big)}; keep this model in fp32 or rescale those weights"
        )
    g.initializer.extend(copies.values())
    new_nodes = _boundaries(g, stored, new_nodes, keep_io_types)
    ours = {id(c) for c in casts.values()}
    del g.node[:]
    g.node.extend(_collapse_casts(new_nodes, stored, plan.types, ours, plan.outputs))
    del g.value_info[:]
    check_graph(out, "fp16: conversion")
    return out


def _retype_attributes(n, half) -> None:
    """A node now producing float16: its Cast target / constant value attribute follows."""
    if n.op_type == "Cast":
        next(a for a in n.attribute if a.name == "to").i = F16
    elif n.op_type in ("Constant", "ConstantOfShape"):
        for k, a in enumerate(n.attribute):
            if a.name == "value" and a.t.data_type == F32:
                a.t.CopyFrom(numpy_helper.from_array(half(n.output[0], numpy_helper.to_array(a.t))))
            elif a.name in ("value_float", "value_floats"):
                arr = np.asarray(helper.get_attribute_value(a), dtype=np.float32)
                n.attribute[k].CopyFrom(
                    helper.make_attribute("value", numpy_helper.from_array(half(n.output[0], arr)))
                )


def _boundaries(g, stored, nodes, keep_io_types):
    """Graph inputs/outputs: float32 behind a Cast (keep_io_types) or declared float16."""
    for vi in g.input:
        if stored.get(vi.name) == F16:
            vi.type.tensor_type.elem_type = F16
    tail = []
    for vi in g.output:
        o = vi.name
        if stored.get(o) != F16:
            continue
        if not keep_io_types:
            vi.type.tensor_type.elem_type = F16
            continue
        inner = f"{o}__fp16"
        for n in nodes:
            n.input[:] = [inner if i == o else i for i in n.input]
            n.output[:] = [inner if x == o else x for x in n.output]
        tail.append(helper.make_node("Cast", [inner], [o], name=f"{o}__to_fp32", to=F32))
    return nodes + tail


def _collapse_casts(nodes, stored, types, ours, outputs):
    """Remove Cast->Cast pairs: exact when the first Cast loses nothing, or ours to float16."""

    def type_of(v):
        return stored.get(v, types.get(v))

    changed = True
    while changed:
        changed = False
        producer = {o: n for n in nodes for o in n.output}
        for b in nodes:
            a = producer.get(b.input[0]) if b.op_type == "Cast" else None
            if a is None or a.op_type != "Cast":
                continue
            t0, t1, t2 = type_of(a.input[0]), _attr(a, "to"), _attr(b, "to")
            if not (t1 in EXACT.get(t0, ()) or (id(b) in ours and t2 == F16)):
                continue
            b.input[0] = a.input[0]
            if t2 == t0 and b.output[0] not in outputs:  # the pair was a round trip
                for n in nodes:
                    n.input[:] = [a.input[0] if i == b.output[0] else i for i in n.input]
                nodes = [n for n in nodes if n is not b]
            used = {i for n in nodes for i in n.input} | outputs
            if a.output[0] not in used:
                nodes = [n for n in nodes if n is not a]
            changed = True
            break
    return nodes
