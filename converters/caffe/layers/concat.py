"""Concat and Slice: joining and cutting blobs along one axis.

Both take the axis from ``axis`` (default 1) or the pre-2015 alias (``concat_dim`` /
``slice_dim``); Caffe refuses a layer that sets both. Slice cuts at ``slice_point`` (N-1 increasing
points for N tops) or, without points, into equal parts that must divide the axis evenly.
"""

from __future__ import annotations

from itertools import pairwise

from converters.caffe.layers._axes import legacy_axis, same_shapes
from converters.caffe.registry import register


@register("Concat")
def concat(layer, ctx):
    """Concat along ``axis`` (or the legacy ``concat_dim``)."""
    if not layer.bottoms:
        raise layer.error("needs at least one bottom blob")
    xs = ctx.inputs(layer)
    shapes = [ctx.shape(x) for x in xs]
    axis = legacy_axis(layer, layer.param("concat_param"), "concat_dim", "axis", len(shapes[0]))
    same_shapes(layer, shapes, skip_axis=axis)
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    y = ctx.node("Concat", xs, ctx.top_name(layer), axis=axis)
    ctx.set_top(layer, 0, y, out_shape)


def _slice_sizes(layer, points: list[int], dim: int, tops: int) -> list[int]:
    if not points:
        if dim % tops:
            raise layer.error(
                f"cannot split an axis of size {dim} equally into {tops} tops; give slice_point"
            )
        return [dim // tops] * tops
    if len(points) != tops - 1:
        raise layer.error(
            f"{tops} tops need {tops - 1} slice_point value(s), got {len(points)}: {points}"
        )
    bounds = [0, *points, dim]
    sizes = [b - a for a, b in pairwise(bounds)]
    if any(s <= 0 for s in sizes):
        raise layer.error(
            f"slice_point {points} must be strictly increasing and inside (0, {dim}) "
            f"for an axis of size {dim}"
        )
    return sizes


@register("Slice")
def slice_layer(layer, ctx):
    """Split along ``axis`` (or ``slice_dim``) at ``slice_point``, or into equal parts."""
    if not layer.tops:
        raise layer.error("needs at least one top blob")
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("slice_param")
    axis = legacy_axis(layer, p, "slice_dim", "axis", len(shape))
    sizes = _slice_sizes(layer, [int(v) for v in p.slice_point], shape[axis], len(layer.tops))
    outs = [ctx.top_name(layer, i) for i in range(len(layer.tops))]
    ctx.split(x, axis, sizes, outs)
    for i, (name, size) in enumerate(zip(outs, sizes, strict=True)):
        top_shape = list(shape)
        top_shape[axis] = size
        ctx.set_top(layer, i, name, top_shape)
