"""Ops that are the identity in a deployed Caffe net, and Pad (merged into the next layer).

Identity, Dropout (inference) and Cast to float alias their input: Caffe blobs are float32,
so a cast from an integer input type only changes how the caller feeds the net.
Caffe has no padding layer: a constant Pad over H and W is remembered and merged into the pads
of the Conv or pooling that reads it (the driver refuses it if anything else reads it).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from converters.onnx2caffe.context import PendingPad
from converters.onnx2caffe.registry import register


@register("Identity", "Dropout")
def identity(node, ctx):
    """Alias of the input (Dropout is the identity at inference)."""
    if node.op == "Dropout":
        mask = node.outputs[1] if len(node.outputs) > 1 else None
        if mask and ctx.consumers.get(mask):
            raise node.error("the mask output has no Caffe equivalent")
        training = ctx.optional_const(node, 2, "training_mode") if node.opset >= 12 else None
        if training is not None and bool(np.asarray(training).reshape(())):
            raise node.error("training_mode=true (random dropout) has no inference equivalent")
    ctx.alias(node, 0, ctx.bottom(node))


@register("Cast")
def cast(node, ctx):
    """Cast to float32: an alias (Caffe blobs are float32)."""
    if int(node.attr("to")) != TensorProto.FLOAT:
        raise node.error(f"cast to {TensorProto.DataType.Name(int(node.attr('to')))}; Caffe "
                         f"computes in float32 only")  # fmt: skip
    ctx.alias(node, 0, ctx.bottom(node))


@register("Pad")
def pad(node, ctx):
    """Constant H/W padding, merged into the following Conv or pooling."""
    mode = node.attr("mode", "constant")
    if mode != "constant":
        raise node.error(f"mode '{mode}' has no Caffe equivalent (Caffe pads with zeros)")
    shape = ctx.in_shape(node)
    if node.opset < 11:
        pads, value = list(node.attr("pads")), float(node.attr("value", 0.0))
    else:
        pads = [int(p) for p in ctx.const(node, 1, "pads")]
        v = ctx.optional_const(node, 2, "constant_value")
        value = 0.0 if v is None else float(np.asarray(v).reshape(()))
        axes = ctx.optional_const(node, 3, "axes")
        if axes is not None:
            full = [0] * (2 * len(shape))
            for k, a in enumerate(int(a) % len(shape) for a in axes):
                full[a], full[a + len(shape)] = pads[k], pads[k + len(axes)]
            pads = full
    rank = len(shape)
    if rank != 4 or any(pads[a] or pads[a + rank] for a in (0, 1)) or min(pads) < 0:
        raise node.error(f"pads {pads} on a rank-{rank} input: only non-negative H/W padding "
                         f"of NCHW can merge into a Caffe Conv or pooling")  # fmt: skip
    users = ctx.consumers.get(node.outputs[0], [])
    if any(u.op not in ("Conv", "MaxPool", "AveragePool") for u in users):
        others = sorted({u.op for u in users} - {"Conv", "MaxPool", "AveragePool"})
        raise node.error(f"Caffe has no Pad layer and it cannot merge into {', '.join(others)}")
    ctx.pads[node.outputs[0]] = PendingPad(node, node.inputs[0], (pads[2], pads[3]),
                                           (pads[6], pads[7]), value)  # fmt: skip
