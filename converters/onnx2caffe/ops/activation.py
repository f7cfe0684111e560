"""Element-wise activations: ReLU family, Sigmoid, TanH, ELU, and a few unary maths ops.

``Clip(0, 6)`` becomes ``ReLU6`` (OpenCV and the MobileNet forks; BVLC Caffe has no bounded
ReLU), ``Clip(0, +inf)`` a ReLU; other bounds have no Caffe layer and are refused.
PReLU's slope must be per channel (axis 1) or a single value: ONNX broadcasts the slope
numpy-style, so a ``(C,)`` slope on an NCHW input would be per *column*, not per channel.
"""

from __future__ import annotations

import math

import numpy as np

from converters.onnx2caffe.registry import register

_SIMPLE = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "Abs": "AbsVal",
           "Exp": "Exp", "Log": "Log"}  # fmt: skip


def _unary(node, ctx, type_name: str):
    return ctx.add_layer(type_name, [ctx.bottom(node)], [node.outputs[0]])


@register(*_SIMPLE)
def simple(node, ctx):
    """Relu, Sigmoid, Tanh, Abs, Exp, Log: one Caffe layer each."""
    _unary(node, ctx, _SIMPLE[node.op])


@register("LeakyRelu")
def leaky_relu(node, ctx):
    """ReLU with negative_slope."""
    _unary(node, ctx, "ReLU").relu_param.negative_slope = float(node.attr("alpha", 0.01))


@register("Elu")
def elu(node, ctx):
    """ELU with alpha."""
    _unary(node, ctx, "ELU").elu_param.alpha = float(node.attr("alpha", 1.0))


@register("Neg", "Sqrt", "Reciprocal")
def power(node, ctx):
    """Power layer: y = (shift + scale * x) ^ power."""
    param = _unary(node, ctx, "Power").power_param
    if node.op == "Neg":
        param.scale = -1.0
    else:
        param.power = 0.5 if node.op == "Sqrt" else -1.0


@register("PRelu")
def prelu(node, ctx):
    """PReLU with a per-channel or single slope."""
    shape = ctx.in_shape(node)
    slope = np.asarray(ctx.const(node, 1, "the slope"), dtype=np.float32)
    if slope.ndim > len(shape):
        raise node.error(f"slope shape {list(slope.shape)} has more dims than the input")
    aligned = (1,) * (len(shape) - slope.ndim) + slope.shape
    if slope.size == 1:
        layer = ctx.add_layer("PReLU", [ctx.bottom(node)], [node.outputs[0]], [slope.reshape(1)])
        layer.prelu_param.channel_shared = True
        return
    if len(shape) < 2 or aligned[1] != shape[1] or any(d != 1 for i, d in enumerate(aligned)
                                                       if i != 1):  # fmt: skip
        raise node.error(
            f"slope shape {list(slope.shape)} on input {list(shape)} is not per channel "
            f"(Caffe PReLU needs (C,1,1) or a single value)"
        )
    ctx.add_layer("PReLU", [ctx.bottom(node)], [node.outputs[0]], [slope.reshape(-1)])


def _bound(node, ctx, i: int, attr: str):
    if node.opset < 11:
        return node.attr(attr)
    if node.input(i) is None:
        return None
    return float(np.asarray(ctx.const(node, i, f"the {attr} bound")).reshape(()))


@register("Clip")
def clip(node, ctx):
    """Clip(0, 6) -> ReLU6, Clip(0, inf) -> ReLU, no bounds -> identity."""
    lo, hi = _bound(node, ctx, 1, "min"), _bound(node, ctx, 2, "max")
    lo = None if lo is not None and lo <= -3.4e38 else lo
    hi = None if hi is not None and (hi >= 3.4e38 or math.isinf(hi)) else hi
    if lo is None and hi is None:
        ctx.alias(node, 0, ctx.bottom(node))
    elif lo == 0 and hi is None:
        _unary(node, ctx, "ReLU")
    elif lo == 0 and hi == 6:
        _unary(node, ctx, "ReLU6")
    else:
        raise node.error(f"Clip({lo}, {hi}) has no Caffe layer (only (0, 6) and (0, inf))")
