"""Softmax / LogSoftmax -> softmax / log_softmax over one axis.

Before opset 13 ONNX's softmax covers every axis from ``axis`` on (the input coerced to 2-D):
that is one axis when ``axis`` is the last, otherwise it is done as Reshape -> softmax ->
Reshape, which is exact.
"""

from __future__ import annotations

import math

from converters.mxnet.registry import register


@register("Softmax", "LogSoftmax")
def softmax(node, ctx):
    """softmax(axis) / log_softmax(axis)."""
    op = "softmax" if node.op == "Softmax" else "log_softmax"
    shape = ctx.in_shape(node)
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1)) % len(shape)
    if node.opset >= 13 or axis == len(shape) - 1:
        ctx.out(node, op, [ctx.sym(node, 0)], {"axis": axis})
        return
    flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    x = ctx.op("Reshape", [ctx.sym(node, 0)], {"shape": flat}, hint=f"{node.name}/2d")
    y = ctx.op(op, [x], {"axis": 1}, hint=f"{node.name}/softmax")
    ctx.out(node, "Reshape", [y], {"shape": tuple(shape)})
