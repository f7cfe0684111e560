"""ONNX -> Caffe (``model.prototxt`` + ``model.caffemodel``, our schema, modern ``layer {}``).

The driver infers static shapes, folds constant subgraphs, emits one ``Input`` layer per graph
input and runs one registered handler per live node, in graph order. Every blob and the layer
writing it carry the ONNX value's name, so graph outputs are Caffe top blobs of the same names.
Any node Caffe cannot express stops the conversion with one line naming the node; files are
only written once the whole net has been built, both or neither.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import text_format

from converters.caffe.proto import caffe_pb2
from converters.errors import ConversionError
from converters.io import write_together
from converters.onnx2caffe import caffe_layers, prepare
from converters.onnx2caffe.context import Context, NodeView
from converters.onnx2caffe.registry import get_handler, supported_ops
from converters.onnx_utils import require_opset


def onnx_to_caffe(
    model: onnx.ModelProto, prototxt_path: str | os.PathLike, caffemodel_path: str | os.PathLike
) -> None:
    """Write ``model`` as a Caffe net; raises ``ConversionError`` (nothing written) if it can't."""
    net, weights = build_net(model)
    text = text_format.MessageToString(net)
    write_together([(Path(prototxt_path), text.encode()), (Path(caffemodel_path), weights)])


def build_net(model: onnx.ModelProto) -> tuple[caffe_pb2.NetParameter, bytes]:
    """The prototxt ``NetParameter`` (no blobs) and the serialized ``.caffemodel``."""
    opset = require_opset(model, "Caffe export")
    inferred = prepare.infer(model)
    g = inferred.graph
    shapes = prepare.static_shapes(inferred)
    nodes = [NodeView(n, opset) for n in g.node]
    consts = prepare.fold_constants(nodes, shapes, opset, prepare.initializer_consts(model))
    inputs = prepare.real_inputs(inferred, model)
    names = {v for n in nodes for v in [*n.inputs, *n.outputs] if v}
    names |= {vi.name for vi in [*inputs, *g.output]}
    ctx = Context(opset, shapes, consts, names)

    for vi in inputs:
        if vi.name not in shapes:
            raise ConversionError(
                f"Caffe export: input '{vi.name}' has no static shape; fix it first "
                f"(--input-shape {vi.name}=D1,D2,...)"
            )
        layer = ctx.add_layer("Input", [], [vi.name])
        ctx.input_names.add(vi.name)
        layer.input_param.shape.add().dim.extend(shapes[vi.name])

    outputs = [vi.name for vi in g.output]
    live = prepare.live_nodes(nodes, outputs)
    restored = caffe_layers.plan(model, nodes, consts, shapes, outputs)
    _refuse_foreign_nms([n for n in live if id(n) not in restored.skipped], consts)
    for node in live:
        if id(node) in restored.skipped:
            continue
        for v in node.inputs:
            if v:
                ctx.consumers.setdefault(v, []).append(node)
    checked: set[str] = set()
    for node in live:
        if id(node) in restored.anchors:
            caffe_layers.emit(restored.anchors[id(node)], ctx, restored, checked)
            continue
        if id(node) in restored.skipped:
            continue  # inside a restored layer's decomposition
        if all(o is None or o in consts for o in node.outputs):
            continue  # folded
        if node.proto.domain not in ("", "ai.onnx"):
            raise node.error(f"operator domain '{node.proto.domain}' has no Caffe equivalent")
        info = get_handler(node.op)
        if info is None:
            ops = ", ".join(sorted(h.op_type for h in supported_ops()))
            raise node.error(f"no Caffe equivalent; supported ONNX ops: {ops}")
        info.handler(node, ctx)
        for o in node.outputs:
            if o and not ctx.has_blob(o) and o not in ctx.pads and ctx.consumers.get(o):
                raise node.error(f"internal error: output '{o}' was not produced")

    for name in outputs:  # priors as a graph output (an SSD cut before DetectionOutput)
        if name in consts and not ctx.has_blob(name):
            caffe_layers.emit_output(name, ctx, restored, checked)
    _finish_outputs(ctx, outputs)
    for p in ctx.pads.values():
        users = ctx.consumers.get(p.node.outputs[0], [])
        if not users:
            continue
        if not all(u.name in p.merged_into for u in users):
            raise p.node.error("only a Pad read by Conv/pooling nodes can be merged into them")

    net = caffe_pb2.NetParameter(name=g.name or "net")
    weights = caffe_pb2.NetParameter(name=net.name)
    for layer, arrays in ctx.layers:
        net.layer.add().CopyFrom(layer)
        if arrays:
            w = weights.layer.add(name=layer.name, type=layer.type)
            w.bottom.extend(layer.bottom)
            w.top.extend(layer.top)
            for arr in arrays:
                _fill_blob(w.blobs.add(), arr)
    return net, weights.SerializeToString()


def _refuse_foreign_nms(nodes: list[NodeView], consts) -> None:
    """An NMS zoomake did not record (another exporter's ``NonMaxSuppression``, or a Loop/If
    whose body holds one) is refused before anything else, with the cut at the values it reads:
    whatever else the post-processing holds, this op alone rules the graph out. Caffe's only
    NMS is inside ``DetectionOutput``, which also decodes the boxes and orders its rows its own
    way (docs/detection.md); the indices ONNX's op returns have no Caffe layer to read them."""
    for node in nodes:
        if node.op == "NonMaxSuppression":
            what, cut = "ONNX's NonMaxSuppression", node.inputs[:2]
        elif (inner := _inner_nms(node.proto)) is not None:
            what = f"its body's NonMaxSuppression '{inner.name or inner.output[0]}'"
            cut = [*node.inputs[2:], *sorted(caffe_layers.outer_reads(node))]
        else:
            continue
        cut = list(dict.fromkeys(v for v in cut if v and v not in consts))
        raise node.error(
            f"{what} has no Caffe equivalent (Caffe's NMS is part of DetectionOutput, written "
            f"back only from zoomake's own records); cut the graph before it with --outputs "
            f"{','.join(cut)} (recipe: outputs: [{', '.join(cut)}])"
        )


def _inner_nms(proto):
    """The first NonMaxSuppression in ``proto``'s subgraphs (any depth), or None."""
    for attr in proto.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for n in sub.node:
                found = n if n.op_type == "NonMaxSuppression" else _inner_nms(n)
                if found is not None:
                    return found
    return None


def _finish_outputs(ctx: Context, outputs: list[str]) -> None:
    """Make the graph outputs exactly the net's final blobs, each written by a layer of its name.

    Runtimes (and our verifier) take a Caffe net's outputs to be the blobs no layer reads, and
    OpenCV fetches a blob through the layer writing it. So: an aliased output (Identity, a
    no-op Reshape) gets a copy; an output that later layers also read is renamed for them and
    copied out at the end; Slice pieces nobody reads go into one Silence layer.
    """
    for name in outputs:
        if name in ctx.consts and not ctx.has_blob(name):  # a written-back prior has a blob
            raise ConversionError(
                f"Caffe export: graph output '{name}' is a constant; Caffe has no constant layer"
            )
        if name in ctx.pads:
            raise ctx.pads[name].node.error("a Pad whose output is a graph output cannot be "
                                            "merged into a Conv or pooling")  # fmt: skip
        blob = ctx.blob_of(name)
        if blob is None:
            raise ConversionError(f"Caffe export: graph output '{name}' is not produced")
        if blob == name and name not in ctx.input_names and not _final(ctx, name):
            blob = ctx.rename_blob(name, ctx.fresh(f"{name}/value"))
        if blob != name:
            # Split with one top is Caffe's plain copy layer.
            ctx.add_layer("Split", [blob], [name], name=name)
    read = {b for layer, _ in ctx.layers for b in layer.bottom}
    wanted = set(outputs)
    dangling = [t for layer, _ in ctx.layers for t in layer.top if t not in read | wanted]
    if dangling:
        ctx.add_layer("Silence", dangling, [], name=ctx.fresh("unused"))


def _final(ctx: Context, name: str) -> bool:
    """``name`` is top 0 of a layer of the same name and no layer reads it."""
    for layer, _ in ctx.layers:
        if name in layer.bottom or (name in layer.top and layer.top[0] != name):
            return False
        if layer.top and layer.top[0] == name and layer.name != name:
            return False
    return True


def _fill_blob(blob: caffe_pb2.BlobProto, arr: np.ndarray) -> None:
    """Shape and float data of ``blob``; the data is parsed from its wire bytes.

    Filling ``blob.data`` from Python costs ~150 ns per value (0.6 s per 4M floats, measured);
    parsing a packed field (tag, varint length, little-endian floats) is a memcpy.
    """
    blob.shape.SetInParent()  # a 0-d blob (Normalize's shared scale) has an empty shape
    blob.shape.dim.extend(arr.shape)
    raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    n, header = len(raw), bytearray([(5 << 3) | 2])  # field 5 (data), wire type 2 (packed)
    while True:
        byte, n = n & 0x7F, n >> 7
        header.append(byte | (0x80 if n else 0))
        if not n:
            break
    blob.MergeFromString(bytes(header) + raw)
