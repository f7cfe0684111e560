"""Caffe's DetectionOutput for the PyTorch writer: the recorded layer, not its ONNX pieces.

The Caffe -> ONNX converter decomposes DetectionOutput into ~150 nodes with data-dependent
shapes (a TopK whose k is a count, a ``Loop``, ``NonZero``) and records the layer in the model's
``metadata_props`` (``converters/caffe/records.py``). The op-by-op generator needs static
shapes, so ``extract`` replaces the recorded decomposition by one node of domain ``DOMAIN``
(inputs: the recorded bottoms, output: its top, attribute ``layer``: the record), after
checking the graph as the Caffe writer does (``converters/onnx2caffe/caffe_layers.py``): the
nodes computing the top read nothing but its bottoms and constants, and nothing else reads
their inner values. ``emit`` writes a call of ``ssd_detection_output`` (``ssd.py``, copied into
``model.py``). An NMS without a record (another exporter's, or metadata stripped) stays refused
by ``refuse_unrecorded`` in one line.
"""

from __future__ import annotations

import numpy as np
import onnx
from google.protobuf import text_format
from onnx import helper

from converters.caffe import records
from converters.caffe.proto import caffe_pb2
from converters.errors import UnsupportedError
from converters.onnx2caffe.caffe_layers import decomposition
from converters.pytorch.ssd import MAX_CANDIDATES

DOMAIN = "zoomake.caffe"
NMS_OPS = frozenset({"Loop", "NonMaxSuppression", "NonZero"})


def extract(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """The model with each recorded DetectionOutput decomposition replaced by one node."""
    recs = []
    for rec in records.read(model):
        layer = caffe_pb2.LayerParameter()
        text_format.Parse(rec["layer"], layer)
        if layer.type == "DetectionOutput" and not rec.get("const"):
            recs.append((layer, rec["layer"]))
    if not recs:
        return model
    g = model.graph
    nodes = list(g.node)
    consts = {t.name for t in g.initializer}
    outputs = {o.name for o in g.output}
    remove: set[int] = set()
    placed: dict[int, onnx.NodeProto] = {}  # index of the top's producer -> the new node
    for layer, text in recs:
        top = layer.top[0]

        def error(reason, layer=layer):
            return UnsupportedError(
                f"{source}: layer '{layer.name}' (DetectionOutput) recorded by the Caffe -> "
                f"ONNX conversion: {reason}"
            )

        producer = [i for i, n in enumerate(nodes) if top in n.output]
        if not producer:
            continue  # cut before the layer: nothing to replace
        try:
            members = decomposition(nodes, top, layer.bottom, consts, outputs,
                                    lambda n: (n.input, n.output))  # fmt: skip
        except ValueError as exc:
            raise error(str(exc)) from None
        remove |= members
        placed[producer[0]] = helper.make_node(
            "DetectionOutput", list(layer.bottom), [top], name=layer.name, domain=DOMAIN,
            layer=text,
        )  # fmt: skip
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(
        placed.get(i, n) for i, n in enumerate(nodes) if i in placed or i not in remove
    )
    out.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return out


def emit(node, ctx) -> None:
    """``ssd_detection_output(loc, conf, prior, ...)`` for a node made by ``extract``."""
    layer = caffe_pb2.LayerParameter()
    text_format.Parse(ctx.attr(node, "layer").decode(), layer)
    p = layer.detection_output_param
    loc, conf, prior = (
        tuple(ctx.consts[v].shape) if v in ctx.consts else ctx.shape(v) for v in node.input[:3]
    )
    priors, classes = prior[-1] // 4, p.num_classes
    loc_classes = 1 if p.share_location else classes
    if loc[1:] != (priors * loc_classes * 4,) or conf[1:] != (priors * classes,):
        raise ctx.refuse(node, f"loc {list(loc)} and conf {list(conf)} do not match "
                               f"{priors} priors and {classes} classes")  # fmt: skip
    if p.nms_param.eta != 1.0:
        raise ctx.refuse(node, f"nms_param.eta {p.nms_param.eta:g} (adaptive NMS) is not supported")
    top_k = p.nms_param.top_k if p.nms_param.HasField("top_k") else -1
    k = priors if top_k < 0 else min(top_k, priors)
    if k > MAX_CANDIDATES:
        raise ctx.refuse(node, f"{k} NMS candidates per class (nms_param.top_k "
                               f"{'unset' if top_k < 0 else top_k}, {priors} priors): the "
                               f"generated NMS unrolls one step per candidate, at most "
                               f"{MAX_CANDIDATES}; set top_k or cut the graph before the layer")  # fmt: skip
    f32 = np.float32
    thr = p.confidence_threshold if p.HasField("confidence_threshold") else -np.finfo(f32).max
    kwargs = {
        "num_classes": classes,
        "labels": [c for c in range(classes) if c != p.background_label_id],
        "share_location": bool(p.share_location),
        "code_type": int(p.code_type),
        "variance_encoded": bool(p.variance_encoded_in_target),
        "normalized": bool(p.normalized_bbox),
        # float32 values, as Caffe compares them (exact as Python floats)
        "threshold": float(f32(thr)),
        "nms_threshold": float(f32(p.nms_param.nms_threshold)),
        "top_k": int(top_k),
        "keep_top_k": int(p.keep_top_k),
    }
    args = [ctx.var(node, i) for i in range(3)]
    args += [f"{k}={v!r}" for k, v in kwargs.items()]
    ctx.helpers.add("ssd")
    ctx.assign(node, f"ssd_detection_output({', '.join(args)})")


def refuse_unrecorded(model: onnx.ModelProto, source: str) -> None:
    """One line for data-dependent shapes the writer cannot generate (an NMS with no
    DetectionOutput record: another exporter's, or metadata stripped), naming the first node."""
    for node in model.graph.node:
        if node.op_type in NMS_OPS and node.domain in ("", "ai.onnx"):
            raise UnsupportedError(
                f"{source}: node {node.name or node.output[0]!r} ({node.op_type}): "
                "data-dependent shapes (as in an NMS): the PyTorch writer generates them only "
                "for a Caffe DetectionOutput recorded by zoomake's Caffe -> ONNX conversion "
                f"(metadata {records.METADATA_KEY}); cut the graph before it (--outputs / "
                "recipe outputs)"
            )
