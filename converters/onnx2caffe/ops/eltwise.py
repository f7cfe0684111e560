"""Add / Sub / Mul / Div / Max / Sum.

Two tensors of the output's shape -> Eltwise (SUM with ``coeff`` for Sub, PROD, MAX).
A tensor and a constant -> an affine ``y = x * gamma + beta``: a Power layer when the constant is
a single value, else a Scale layer whose ``axis``/``num_axes`` span the constant's non-1 dims
(a ``(1,C,1,1)`` mean or scale becomes a per-channel Scale). Caffe's Bias layer is not used:
OpenCV's Caffe importer has none, a Scale with ``bias_term`` and unit gamma does the same.
``x * s`` with ``s`` a broadcast tensor such as an SE block's ``(N,C,1,1)`` -> a two-bottom Scale.
``Max(x, -FLT_MAX)`` after a MaxRoiPool is the identity on Caffe's ROIPooling (roi_pooling.py).
"""

from __future__ import annotations

import numpy as np

from converters.onnx2caffe.ops.roi_pooling import absorb_floor
from converters.onnx2caffe.registry import register

PROD, SUM, MAX = 0, 1, 2  # EltwiseParameter.EltwiseOp


def _span(shape) -> tuple[int, int]:
    """[a, b): the smallest axis range holding every non-1 dim of ``shape``."""
    big = [i for i, d in enumerate(shape) if d != 1]
    return (big[0], big[-1] + 1) if big else (0, 0)


def affine(ctx, node, x: str, x_shape, gamma, beta, out: str) -> None:
    """``out = x * gamma + beta`` with constants broadcastable to ``x_shape`` (None = skip)."""
    rank = len(x_shape)
    parts = [np.asarray(v, dtype=np.float64) for v in (gamma, beta) if v is not None]
    if any(p.ndim > rank for p in parts):
        raise node.error(f"a constant of rank > {rank} would broadcast the input")
    aligned = [(1,) * (rank - p.ndim) + p.shape for p in parts]
    if all(int(np.prod(s)) == 1 for s in aligned):
        layer = ctx.add_layer("Power", [x], [out])
        if gamma is not None:
            layer.power_param.scale = float(np.asarray(gamma).reshape(()))
        if beta is not None:
            layer.power_param.shift = float(np.asarray(beta).reshape(()))
        return
    lo = min(_span(s)[0] for s in aligned if int(np.prod(s)) > 1)
    hi = max(_span(s)[1] for s in aligned if int(np.prod(s)) > 1)
    target = tuple(x_shape[lo:hi])

    keep = tuple(slice(None) if lo <= i < hi else 0 for i in range(rank))

    def expand(v, default):
        if v is None:
            return np.full(target, default, dtype=np.float32)
        v = np.asarray(v, dtype=np.float64)
        full = np.broadcast_to(v.reshape((1,) * (rank - v.ndim) + v.shape), tuple(x_shape))
        return np.ascontiguousarray(full[keep], dtype=np.float32)

    blobs = [expand(gamma, 1.0)]
    if beta is not None:
        blobs.append(expand(beta, 0.0))
    layer = ctx.add_layer("Scale", [x], [out], blobs)
    layer.scale_param.axis = lo
    layer.scale_param.num_axes = hi - lo
    layer.scale_param.bias_term = beta is not None


def _with_constant(node, ctx, data_index: int):
    x = ctx.bottom(node, data_index)
    x_shape = ctx.in_shape(node, data_index)
    if tuple(ctx.out_shape(node)) != tuple(x_shape):
        raise node.error(f"the constant broadcasts the input {list(x_shape)} to "
                         f"{list(ctx.out_shape(node))}")  # fmt: skip
    c = np.asarray(ctx.const(node, 1 - data_index, "the other operand"), dtype=np.float64)
    out = node.outputs[0]
    if node.op == "Max":
        if c.size == 1 and float(c.reshape(())) == 0.0:
            ctx.add_layer("ReLU", [x], [out])
            return
        if c.size == 1 and absorb_floor(node, ctx, node.inputs[data_index], float(c.reshape(()))):
            return  # the -FLT_MAX floor after a MaxRoiPool: already what Caffe's layer gives
        raise node.error("Max with a constant other than 0 has no Caffe layer")
    if node.op == "Add":
        affine(ctx, node, x, x_shape, None, c, out)
    elif node.op == "Mul":
        affine(ctx, node, x, x_shape, c, None, out)
    elif node.op == "Sub":
        if data_index == 0:
            affine(ctx, node, x, x_shape, None, -c, out)
        else:
            affine(ctx, node, x, x_shape, np.float64(-1.0), c, out)
    elif data_index == 0:  # Div by a constant: multiply by its reciprocal
        affine(ctx, node, x, x_shape, 1.0 / c, None, out)
    else:
        raise node.error("dividing a constant by a tensor has no Caffe layer")


def _broadcast_mul(node, ctx, shapes):
    big = 0 if int(np.prod(shapes[0])) >= int(np.prod(shapes[1])) else 1
    x_shape, s_shape = shapes[big], shapes[1 - big]
    aligned = (1,) * (len(x_shape) - len(s_shape)) + tuple(s_shape)
    a, b = _span(aligned)
    if tuple(x_shape) != tuple(ctx.out_shape(node)) or aligned[a:b] != tuple(x_shape[a:b]):
        raise node.error(f"broadcasting {list(shapes[0])} with {list(shapes[1])} has no Caffe "
                         f"layer")  # fmt: skip
    out = node.outputs[0]
    s = ctx.bottom(node, 1 - big)
    if tuple(s_shape) != aligned[a:b]:
        s_flat = ctx.fresh(f"{out}/factor")
        layer = ctx.add_layer("Reshape", [s], [s_flat])
        layer.reshape_param.shape.dim.extend(aligned[a:b])
        s = s_flat
    layer = ctx.add_layer("Scale", [ctx.bottom(node, big), s], [out])
    layer.scale_param.axis = a


@register("Add", "Sub", "Mul", "Div", "Max", "Sum")
def eltwise(node, ctx):
    """Eltwise for equal shapes, Power/Scale with a constant, two-bottom Scale for x * s."""
    ins = [i for i in node.inputs if i is not None]
    consts = [i for i, v in enumerate(ins) if ctx.is_const(v)]
    if consts:
        if len(ins) != 2 or len(consts) != 1:
            raise node.error("only one constant operand with one tensor is supported")
        _with_constant(node, ctx, 1 - consts[0])
        return
    if len(ins) == 1:
        ctx.alias(node, 0, ctx.bottom(node))
        return
    shapes = [ctx.in_shape(node, i) for i in range(len(ins))]
    if any(tuple(s) != tuple(ctx.out_shape(node)) for s in shapes):
        if node.op == "Mul" and len(ins) == 2:
            _broadcast_mul(node, ctx, shapes)
            return
        raise node.error(f"broadcasting {[list(s) for s in shapes]} has no Caffe layer")
    if node.op == "Div" or (node.op == "Sub" and len(ins) != 2):
        raise node.error("dividing two tensors has no Caffe layer")
    layer = ctx.add_layer("Eltwise", [ctx.bottom(node, i) for i in range(len(ins))],
                          [node.outputs[0]])  # fmt: skip
    param = layer.eltwise_param
    param.operation = {"Mul": PROD, "Max": MAX}.get(node.op, SUM)
    if node.op == "Sub":
        param.coeff.extend([1.0, -1.0])
