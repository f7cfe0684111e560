"""ReLU (with negative_slope) and PReLU."""

from __future__ import annotations

from converters.caffe.registry import register


@register("ReLU")
def relu(layer, ctx):
    """Relu; ``negative_slope`` != 0 makes it LeakyRelu."""
    x = ctx.input(layer)
    slope = layer.param("relu_param").negative_slope
    if slope:
        y = ctx.node("LeakyRelu", [x], ctx.top_name(layer), alpha=float(slope))
    else:
        y = ctx.node("Relu", [x], ctx.top_name(layer))
    ctx.set_top(layer, 0, y, ctx.shape(x))


@register("PReLU")
def prelu(layer, ctx):
    """PRelu with the slope shaped (C,1,...) to broadcast over channels (or one shared value)."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if layer.param("prelu_param").channel_shared:
        slope = layer.blob(0, (1,), "slope")
    else:
        c = shape[1] if len(shape) > 1 else 1
        # A (C) slope broadcasts against the last axis in ONNX: shape it (C, 1, ..., 1).
        slope = layer.blob(0, (c,) + (1,) * (len(shape) - 2), "slope")
    y = ctx.node("PRelu", [x, ctx.const(f"{layer.name}/slope", slope)], ctx.top_name(layer))
    ctx.set_top(layer, 0, y, shape)
