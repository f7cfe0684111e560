"""Softmax -> Softmax over one axis.

From opset 13 ONNX Softmax normalizes over one axis, like Caffe's. Before 13 it flattened the
input to 2-D at ``axis`` and normalized over everything after it; that equals Caffe's only for
the last axis (or trailing dims of 1), otherwise the flattening is written out with Reshapes.
"""

from __future__ import annotations

import math

from converters.onnx2caffe.registry import register


@register("Softmax")
def softmax(node, ctx):
    """Softmax over one axis (pre-13 coerced-2D semantics via Reshape)."""
    shape = ctx.in_shape(node)
    rank = len(shape)
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1)) % rank
    x, out = ctx.bottom(node), node.outputs[0]
    if node.opset >= 13 or math.prod(shape[axis + 1 :]) == 1:
        ctx.add_layer("Softmax", [x], [out]).softmax_param.axis = axis
        return
    flat = ctx.fresh(f"{out}/2d")
    ctx.add_layer("Reshape", [x], [flat]).reshape_param.shape.dim.extend(
        [math.prod(shape[:axis]), math.prod(shape[axis:])]
    )
    normed = ctx.fresh(f"{out}/softmax")
    ctx.add_layer("Softmax", [flat], [normed]).softmax_param.axis = 1
    ctx.add_layer("Reshape", [normed], [out]).reshape_param.shape.dim.extend(shape)
