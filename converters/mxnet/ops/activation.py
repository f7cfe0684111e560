"""Element-wise activations and unary maths: Activation, LeakyReLU, clip and friends.

PReLU's slope must be per channel (axis 1) or a single value (MXNet's ``gamma`` is (C,)); a
single value is stored repeated per channel. Clip keeps its bounds as ``clip(a_min, a_max)``,
exact (a missing bound is float32's largest magnitude, what ONNX's default means for float).
"""

from __future__ import annotations

import numpy as np

from converters.mxnet.registry import register

_ACT = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softrelu",
        "Softsign": "softsign"}  # fmt: skip
_UNARY = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "negative",
          "Reciprocal": "reciprocal", "Erf": "erf", "Floor": "floor", "Ceil": "ceil"}  # fmt: skip
_FLT_MAX = float(np.finfo(np.float32).max)


@register(*_ACT)
def activation(node, ctx):
    """Activation(act_type)."""
    ctx.out(node, "Activation", [ctx.sym(node, 0)], {"act_type": _ACT[node.op]})


@register(*_UNARY)
def unary(node, ctx):
    """exp, log, sqrt, abs, negative, reciprocal, erf, floor, ceil."""
    ctx.out(node, _UNARY[node.op], [ctx.sym(node, 0)])


@register("LeakyRelu", "Elu")
def leaky(node, ctx):
    """LeakyReLU leaky (slope = alpha) / elu (slope = alpha)."""
    kind, default = ("leaky", 0.01) if node.op == "LeakyRelu" else ("elu", 1.0)
    attrs = {"act_type": kind, "slope": float(node.attr("alpha", default))}
    ctx.out(node, "LeakyReLU", [ctx.sym(node, 0)], attrs)


@register("PRelu")
def prelu(node, ctx):
    """LeakyReLU prelu with a per-channel gamma."""
    shape = ctx.in_shape(node)
    slope = np.asarray(ctx.const(node, 1, "the slope"), dtype=np.float32)
    if len(shape) < 2 or slope.ndim > len(shape):
        raise node.error(f"slope {list(slope.shape)} on input {list(shape)}")
    aligned = (1,) * (len(shape) - slope.ndim) + slope.shape
    if slope.size == 1:
        gamma = np.full(shape[1], slope.reshape(()), np.float32)
    elif aligned[1] == shape[1] and all(d == 1 for i, d in enumerate(aligned) if i != 1):
        gamma = slope.reshape(-1)
    else:
        raise node.error(f"slope shape {list(slope.shape)} on input {list(shape)} is not per "
                         "channel (MXNet's prelu gamma is (C,))")  # fmt: skip
    g = ctx.weight(f"{node.outputs[0]}_gamma", gamma)
    ctx.out(node, "LeakyReLU", [ctx.sym(node, 0), g], {"act_type": "prelu"})


def _bound(node, ctx, i: int, attr: str, default: float) -> float:
    if node.opset < 11:
        return float(node.attr(attr, default))
    if node.input(i) is None:
        return default
    return float(np.asarray(ctx.const(node, i, f"the {attr} bound")).reshape(()))


@register("Clip")
def clip(node, ctx):
    """clip(a_min, a_max); Clip(0, none) is a ReLU."""
    lo = _bound(node, ctx, 1, "min", -_FLT_MAX)
    hi = _bound(node, ctx, 2, "max", _FLT_MAX)
    if lo == 0 and hi >= _FLT_MAX:
        ctx.out(node, "Activation", [ctx.sym(node, 0)], {"act_type": "relu"})
        return
    ctx.out(node, "clip", [ctx.sym(node, 0)], {"a_min": lo, "a_max": hi})


@register("HardSigmoid")
def hard_sigmoid(node, ctx):
    """hard_sigmoid(alpha, beta): max(0, min(1, alpha * x + beta))."""
    attrs = {"alpha": float(node.attr("alpha", 0.2)), "beta": float(node.attr("beta", 0.5))}
    ctx.out(node, "hard_sigmoid", [ctx.sym(node, 0)], attrs)
