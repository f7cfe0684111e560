"""Softmax / LogSoftmax: one axis from opset 13; opset < 13 flattens at axis (its 2-D rule)."""

from __future__ import annotations

import math

from converters.pytorch.registry import register


@register(
    "Softmax", "LogSoftmax", notes="torch.softmax over axis (opset < 13: over the flattened tail)"
)
def softmax(node, ctx):
    """Softmax along ``axis`` (opset >= 13), or over all axes from ``axis`` on (opset < 13)."""
    fn = "torch.softmax" if node.op_type == "Softmax" else "torch.log_softmax"
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    default = -1 if ctx.opset >= 13 else 1
    axis = int(ctx.attr(node, "axis", default))
    axis = axis + rank if axis < 0 else axis
    x = ctx.var(node, 0)
    if ctx.opset >= 13 or axis == rank - 1:
        ctx.assign(node, f"{fn}({x}, dim={axis})")
        return
    flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    ctx.assign(node, f"{fn}({x}.reshape({flat}), dim=1).reshape({tuple(shape)})")
