"""Reshape / Flatten / Squeeze / Unsqueeze -> Reshape or Flatten; Transpose -> Permute.

Shapes are static by the time handlers run, so every reshaping op is written as a Caffe
Reshape with the explicit output dims (no ``0`` / ``-1`` left for the runtime to interpret),
or as Caffe's Flatten when it is exactly ``(N, rest)``. A reshape that changes nothing is an alias.
``Permute`` is the SSD fork's layer (OpenCV reads it); BVLC Caffe has no transpose.
"""

from __future__ import annotations

import math

from converters.onnx2caffe.registry import register


def reshape_to(ctx, node, x: str, in_shape, out_shape, out: str) -> None:
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    if in_shape == out_shape:
        ctx.alias(node, 0, x)
        return
    if len(in_shape) >= 2 and out_shape == (in_shape[0], math.prod(in_shape[1:])):
        ctx.add_layer("Flatten", [x], [out])
        return
    layer = ctx.add_layer("Reshape", [x], [out])
    layer.reshape_param.shape.dim.extend(out_shape)


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape(node, ctx):
    """Any static reshape: Caffe Reshape with explicit dims (Flatten for (N, rest))."""
    reshape_to(ctx, node, ctx.bottom(node), ctx.in_shape(node), ctx.out_shape(node),
               node.outputs[0])  # fmt: skip


@register("Transpose")
def transpose(node, ctx):
    """Permute with the same axis order."""
    rank = len(ctx.in_shape(node))
    perm = [int(p) % rank for p in node.attr("perm", list(range(rank))[::-1])]
    if perm == list(range(rank)):
        ctx.alias(node, 0, ctx.bottom(node))
        return
    layer = ctx.add_layer("Permute", [ctx.bottom(node)], [node.outputs[0]])
    layer.permute_param.order.extend(perm)
