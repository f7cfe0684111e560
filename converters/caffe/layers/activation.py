"""Element-wise activations: ReLU6, Clip, ELU, Sigmoid, TanH, AbsVal, BNLL, Threshold.

Each maps to one ONNX op (two for Threshold). Caffe's formulas (BVLC ``*_layer.cpp``):

- ReLU6 (MobileNet-v2 forks): ``min(max(x, 0) + negative_slope * min(x, 0), threshold)``
  (MobileNet-YOLO's ``negative_slope``, default 0; brocolli-caffe's ``threshold``, default 6).
- Clip: ``max(min, min(x, max))``; with ``min > max`` that is the constant ``min`` while ONNX
  Clip gives ``max``, so that (surely mistaken) case is refused instead of guessed.
- ELU: ``max(x, 0) + alpha * (exp(min(x, 0)) - 1)`` == ONNX Elu.
- BNLL: ``x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))``; onnxruntime's Softplus uses the
  same overflow-free split (checked to 1 ulp over [-1e4, 1e4] in tests/caffe/test_activation.py).
- Threshold: ``x > threshold ? 1 : 0`` (strictly greater): Greater then Cast.
"""

from __future__ import annotations

import math

from onnx import TensorProto

from converters.caffe.registry import register


def check_one_to_one(layer) -> None:
    if len(layer.bottoms) != 1 or len(layer.tops) != 1:
        raise layer.error(
            f"expected 1 bottom and 1 top, got {len(layer.bottoms)} and {len(layer.tops)}"
        )


def _unary(layer, ctx, op: str, extra_inputs=(), **attrs) -> None:
    check_one_to_one(layer)
    x = ctx.input(layer)
    y = ctx.node(op, [x, *extra_inputs], ctx.top_name(layer), **attrs)
    ctx.set_top(layer, 0, y, ctx.shape(x))


def finite(layer, field: str, value: float) -> float:
    if not math.isfinite(value):
        raise layer.error(f"{field} must be a finite number, got {value}")
    return float(value)


@register("ReLU6")
def relu6(layer, ctx):
    """Clip to [0, 6]; relu6_param.negative_slope leaks below 0, threshold moves the 6."""
    p = layer.param("relu6_param")
    slope = finite(layer, "relu6_param.negative_slope", p.negative_slope)
    top = finite(layer, "relu6_param.threshold", p.threshold)
    if not slope:
        lo = ctx.const(f"{layer.name}/min", 0.0)
        _unary(layer, ctx, "Clip", (lo, ctx.const(f"{layer.name}/max", top)))
        return
    check_one_to_one(layer)
    x = ctx.input(layer)
    leaky = ctx.node("LeakyRelu", [x], hint=f"{layer.name}/leaky", alpha=slope)
    y = ctx.node("Min", [leaky, ctx.const(f"{layer.name}/max", top)], ctx.top_name(layer))
    ctx.set_top(layer, 0, y, ctx.shape(x))


@register("Clip")
def clip(layer, ctx):
    """Clip to [clip_param.min, clip_param.max]."""
    if not layer.has_param("clip_param"):
        raise layer.error("needs clip_param { min: ... max: ... }")
    p = layer.param("clip_param")
    lo = finite(layer, "clip_param.min", p.min)
    hi = finite(layer, "clip_param.max", p.max)
    if lo > hi:
        raise layer.error(f"clip_param.min ({lo:g}) must not exceed clip_param.max ({hi:g})")
    _unary(layer, ctx, "Clip", (ctx.const(f"{layer.name}/min", lo),
                                ctx.const(f"{layer.name}/max", hi)))  # fmt: skip


@register("ELU")
def elu(layer, ctx):
    """Elu with elu_param.alpha (default 1)."""
    alpha = finite(layer, "elu_param.alpha", layer.param("elu_param").alpha)
    _unary(layer, ctx, "Elu", alpha=alpha)


@register("Sigmoid")
def sigmoid(layer, ctx):
    """Sigmoid."""
    _unary(layer, ctx, "Sigmoid")


@register("TanH")
def tanh(layer, ctx):
    """Tanh."""
    _unary(layer, ctx, "Tanh")


@register("AbsVal")
def absval(layer, ctx):
    """Abs."""
    _unary(layer, ctx, "Abs")


@register("BNLL")
def bnll(layer, ctx):
    """log(1 + exp(x)) as Softplus (overflow-free, like Caffe's split formula)."""
    _unary(layer, ctx, "Softplus")


@register("Threshold")
def threshold(layer, ctx):
    """1 where x > threshold_param.threshold, else 0 (Greater + Cast to float)."""
    t = finite(layer, "threshold_param.threshold", layer.param("threshold_param").threshold)
    check_one_to_one(layer)
    x = ctx.input(layer)
    mask = ctx.node("Greater", [x, ctx.const(f"{layer.name}/threshold", t)],
                    hint=f"{layer.name}/greater")  # fmt: skip
    y = ctx.node("Cast", [mask], ctx.top_name(layer), to=TensorProto.FLOAT)
    ctx.set_top(layer, 0, y, ctx.shape(x))
