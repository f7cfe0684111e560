"""Activation, LeakyReLU (leaky/prelu/elu), clip, hard_sigmoid and unary maths."""

from __future__ import annotations

import numpy as np

from converters.mxnet.source import register

_ACT = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus",
        "softsign": "Softsign"}  # fmt: skip
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log",
          "sqrt": "Sqrt", "abs": "Abs", "negative": "Neg", "reciprocal": "Reciprocal",
          "erf": "Erf", "floor": "Floor", "ceil": "Ceil", "softsign": "Softsign"}  # fmt: skip


@register("Activation")
def activation(node, ctx):
    """Relu, Sigmoid, Tanh, Softplus (softrelu), Softsign."""
    kind = node.text("act_type")
    if kind not in _ACT:
        raise node.error(f"act_type {kind!r} ({', '.join(_ACT)})")
    ctx.emit(_ACT[kind], [ctx.input(node, 0)], ctx.out(node))


@register(*_UNARY)
def unary(node, ctx):
    """One ONNX op each."""
    ctx.emit(_UNARY[node.op], [ctx.input(node, 0)], ctx.out(node))


@register("LeakyReLU")
def leaky_relu(node, ctx):
    """LeakyRelu (leaky), PRelu with gamma per channel (prelu), Elu (elu)."""
    kind = node.text("act_type", "leaky")
    x = ctx.input(node, 0)
    if kind == "leaky":
        ctx.emit("LeakyRelu", [x], ctx.out(node), alpha=node.float("slope", 0.25))
    elif kind == "elu":
        ctx.emit("Elu", [x], ctx.out(node), alpha=node.float("slope", 0.25))
    elif kind == "prelu":
        gamma = np.asarray(ctx.param(node, 1, "gamma"), dtype=np.float32)
        rank = len(ctx.shape(node, x))
        slope = gamma.reshape((-1,) + (1,) * (rank - 2)) if gamma.size > 1 else gamma.reshape(1)
        ctx.emit("PRelu", [x, ctx.const(f"{node.name}_gamma", slope)], ctx.out(node))
    else:
        raise node.error(f"act_type {kind!r} (leaky, prelu, elu)")


@register("clip")
def clip(node, ctx):
    """Clip(a_min, a_max) (ReLU6 stays clip(0, 6), exact)."""
    lo = ctx.const(f"{node.name}/min", np.float32(node.float("a_min", 0.0)))
    hi = ctx.const(f"{node.name}/max", np.float32(node.float("a_max", 0.0)))
    ctx.emit("Clip", [ctx.input(node, 0), lo, hi], ctx.out(node))


@register("hard_sigmoid")
def hard_sigmoid(node, ctx):
    """HardSigmoid(alpha, beta)."""
    ctx.emit("HardSigmoid", [ctx.input(node, 0)], ctx.out(node),
             alpha=node.float("alpha", 0.2), beta=node.float("beta", 0.5))  # fmt: skip
