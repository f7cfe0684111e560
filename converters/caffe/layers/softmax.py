"""Softmax over one axis (opset >= 13 semantics: no flattening to 2-D)."""

from __future__ import annotations

from converters.caffe.registry import register


@register("Softmax")
def softmax(layer, ctx):
    """Softmax along ``softmax_param.axis`` (default 1)."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    axis = layer.param("softmax_param").axis
    if not -len(shape) <= axis < len(shape):
        raise layer.error(f"softmax axis {axis} is out of range for a {len(shape)}-D input")
    y = ctx.node("Softmax", [x], ctx.top_name(layer), axis=axis % len(shape))
    ctx.set_top(layer, 0, y, shape)
