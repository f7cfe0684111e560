"""Write back the Caffe layers zoomake decomposed on the way to ONNX (SSD's PriorBox,
Normalize and DetectionOutput), from the records the Caffe -> ONNX converter left in the model
(``converters/caffe/records.py``).

Why records and not pattern matching: DetectionOutput becomes ~150 nodes with a ``Loop``
(greedy NMS), Normalize a sum of squares, a root and a division, PriorBox a folded constant.
Matching those shapes would break on any change of the decomposition and cannot recover
parameters that only survive as folded numbers (``nms_threshold`` in a comparison, priors as a
constant). The record names the layer's bottoms and top by their ONNX value names; the writer
then *checks* the graph instead of trusting the record:

- a decomposed layer (``const: false``): the nodes computing its top from its bottoms (the
  backward slice, stopping at the bottoms and at constants) must read no other graph value,
  and no node outside them may read what they compute; they are replaced by the one layer;
- a constant (PriorBox and the Concat/Flatten/Reshape of priors): written as layers only where
  a restored layer reads it, and only if recomputing it from the recorded parameters and the
  graph's shapes gives the constant in the model bit for bit;
- weights (Normalize's scale) come from the recorded initializers, in their Caffe shape.

Anything else is refused with one line naming the layer, before a file is written. Graphs
without records (ONNX files from other exporters) are converted op by op: their box decoding
becomes plain Caffe layers, and an NMS of their own is refused with the cut (``convert.py``,
docs/detection.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from google.protobuf import text_format

from converters.caffe import records
from converters.caffe.proto import caffe_pb2
from converters.errors import UnsupportedError


@dataclass
class Restore:
    layer: caffe_pb2.LayerParameter
    blobs: list[str]
    blob_shapes: list[list[int]]
    const: bool
    nodes: set[int] = field(default_factory=set)  # ids of the NodeViews it replaces

    @property
    def top(self) -> str:
        return self.layer.top[0]

    def error(self, reason: str) -> UnsupportedError:
        return UnsupportedError(
            f"Caffe export: layer '{self.layer.name}' ({self.layer.type}) recorded by the "
            f"Caffe -> ONNX conversion: {reason}"
        )


class Plan:
    """Which nodes the restored layers replace, and where each layer goes."""

    def __init__(self, restores: list[Restore], anchors: dict[int, Restore]):
        self.restores = restores
        self.skipped = {i for r in restores for i in r.nodes}
        self.anchors = anchors  # id(node producing a restored top) -> its Restore
        self.by_top = {r.top: r for r in restores}


def outer_reads(node) -> set[str]:
    """Values a node's subgraphs (Loop/If bodies) read from the enclosing graph (``node``: a
    NodeView or a NodeProto)."""
    names: set[str] = set()
    for attr in getattr(node, "proto", node).attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            made = {i.name for i in sub.input} | {o for n in sub.node for o in n.output}
            made |= {t.name for t in sub.initializer}
            for n in sub.node:
                names.update(i for i in n.input if i and i not in made)
    return names


def decomposition(nodes, top, bottoms, consts, outputs, io) -> set[int]:
    """Indices in ``nodes`` (topological order) of the nodes that compute a recorded layer's
    ``top`` from its ``bottoms`` and ``consts``; ``io(node) -> (inputs, outputs)``. The layer
    can be put back only if nothing else went in (``ValueError``: the graph reads another
    value) and nothing leaks out (a node outside, or a graph output, reads an inner value).
    Used by the Caffe write-back and by the PyTorch writer's DetectionOutput."""
    order, bottoms = list(bottoms), set(bottoms)
    needed, members = {top}, set()
    for i in range(len(nodes) - 1, -1, -1):
        ins, outs = io(nodes[i])
        if not any(o in needed for o in outs if o):
            continue
        members.add(i)
        for v in [*ins, *outer_reads(nodes[i])]:
            if v and v not in bottoms and v not in consts:
                needed.add(v)
    made = {o for i in members for o in io(nodes[i])[1] if o}
    stray = sorted(needed - made)
    if stray:
        raise ValueError(f"the graph computing '{top}' also reads '{stray[0]}', which is not "
                         f"one of its bottoms {order}"
                         "; the graph was edited after conversion")  # fmt: skip
    for i, node in enumerate(nodes):
        if i in members:
            continue
        leak = [v for v in io(node)[0] if v in made and v != top and v not in consts]
        if leak:
            raise ValueError(f"node '{node.name}' reads '{leak[0]}', an inner value of the "
                             "layer's decomposition")  # fmt: skip
    leak = [o for o in outputs if o in made and o != top]
    if leak:
        raise ValueError(f"graph output '{leak[0]}' is an inner value of the layer")
    return members


def plan(model, nodes, consts, shapes, outputs) -> Plan:
    recs = records.read(model)
    restores = []
    for rec in recs:
        layer = caffe_pb2.LayerParameter()
        text_format.Parse(rec["layer"], layer)
        restores.append(Restore(layer, rec.get("blobs", []), rec.get("blob_shapes", []),
                                bool(rec.get("const"))))  # fmt: skip
    producer = {o: n for n in nodes for o in n.outputs if o}
    anchors: dict[int, Restore] = {}
    for r in restores:
        if r.const or r.top not in producer:
            continue  # constants are checked where a restored layer reads them
        try:
            members = decomposition(nodes, r.top, r.layer.bottom, consts, outputs,
                                    lambda n: (n.inputs, n.outputs))  # fmt: skip
        except ValueError as exc:
            raise r.error(str(exc)) from None
        r.nodes = {id(nodes[i]) for i in members}
        anchors[id(producer[r.top])] = r
    return Plan(restores, anchors)


def emit(r: Restore, ctx, p: Plan, checked: set[str]) -> None:
    """Write layer ``r`` (after the constants it reads), its bottoms already blobs."""
    bottoms = []
    for v in r.layer.bottom:
        if not ctx.has_blob(v) and v in p.by_top and p.by_top[v].const:
            _emit_const(p.by_top[v], ctx, p, checked)
        if not ctx.has_blob(v):
            raise r.error(f"its bottom '{v}' is not a blob of the Caffe net")
        bottoms.append(ctx.blob_of(v))
    arrays = []
    for name, shape in zip(r.blobs, r.blob_shapes, strict=False):
        if name not in ctx.consts:
            raise r.error(f"its weight '{name}' is no longer in the graph")
        value = np.asarray(ctx.consts[name], np.float32)
        if value.size != int(np.prod(shape)):
            raise r.error(f"its weight '{name}' has {value.size} values, the layer "
                          f"{int(np.prod(shape))}")  # fmt: skip
        arrays.append(value.reshape(shape))
    layer = ctx.add_layer(r.layer.type, bottoms, [r.top], arrays, name=r.layer.name)
    for f, _ in r.layer.ListFields():
        if f.name not in ("name", "type", "bottom", "top"):
            getattr(layer, f.name).CopyFrom(getattr(r.layer, f.name))
    ctx.define(r.top)


def emit_output(name: str, ctx, p: Plan, checked: set[str]) -> None:
    """A graph output that is a recorded constant (the priors of a net cut before its
    DetectionOutput) is written as its PriorBox/Concat layers; other constants stay refused."""
    r = p.by_top.get(name)
    if r is not None and r.const:
        _emit_const(r, ctx, p, checked)


def _emit_const(r: Restore, ctx, p: Plan, checked: set[str]) -> None:
    _verify(r, ctx, p, checked)
    emit(r, ctx, p, checked)


def _verify(r: Restore, ctx, p: Plan, checked: set[str]) -> None:
    """The constant ``r.top`` (and the recorded constants it is made of, first) equals what its
    recorded layer computes; a part the graph no longer holds is checked through the whole."""
    if r.top in checked:
        return
    for v in r.layer.bottom:
        if v in p.by_top and p.by_top[v].const and v in ctx.consts:
            _verify(p.by_top[v], ctx, p, checked)
    want = ctx.consts.get(r.top)
    got = _value(r, ctx, p)
    if want is None or want.shape != got.shape or not np.array_equal(want, got):
        raise r.error(f"the constant '{r.top}' in the graph no longer equals what the "
                      f"recorded layer computes")  # fmt: skip
    checked.add(r.top)


def _value(r: Restore, ctx, p: Plan) -> np.ndarray:
    """The recorded constant layer's output, recomputed from its parameters and shapes."""
    if r.layer.type == "PriorBox":
        from converters.caffe.layers.prior_box import prior_boxes

        feature, image = (ctx.shapes.get(v) for v in r.layer.bottom)
        if feature is None or image is None or len(feature) != 4 or len(image) != 4:
            raise r.error(f"the shapes of its bottoms {list(r.layer.bottom)} are not known")
        q = r.layer.prior_box_param
        img = ((q.img_h, q.img_w) if q.HasField("img_h") else
               (q.img_size, q.img_size) if q.HasField("img_size") else (0, 0))  # fmt: skip
        step = ((q.step_h, q.step_w) if q.HasField("step_h") else
                (q.step, q.step) if q.HasField("step") else (0, 0))  # fmt: skip
        return prior_boxes(q, feature[2:], image[2:], img, step)
    parts = []
    for v in r.layer.bottom:
        src = p.by_top.get(v)
        if src is None or not src.const:
            raise r.error(f"its bottom '{v}' is not a recorded constant")
        parts.append(_value(src, ctx, p))
    if r.layer.type == "Concat":
        q = r.layer.concat_param
        axis = q.concat_dim if q.HasField("concat_dim") else q.axis
        return np.concatenate(parts, axis=axis)
    want = ctx.consts.get(r.top)
    if want is None or want.size != parts[0].size:
        raise r.error(f"the constant '{r.top}' is not in the graph")
    return parts[0].reshape(want.shape)  # Flatten / Reshape keep the values in order
