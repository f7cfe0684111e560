"""Slice / Split / Gather -> Caffe Slice (+ Concat); Concat -> Concat.

Caffe's Slice cuts one axis into consecutive pieces at ``slice_point``s; pieces nobody reads
stay unconnected (Caffe and OpenCV allow that). A strided or reversed ONNX Slice, or a Gather
with constant indices (e.g. ``[2, 1, 0]``: RGB <-> BGR), is a Slice into runs of consecutive
indices followed by a Concat of the runs in the wanted order.
"""

from __future__ import annotations

import numpy as np

from converters.onnx2caffe.ops._pieces import MAX_PIECES, take
from converters.onnx2caffe.ops.shape import reshape_to
from converters.onnx2caffe.registry import register


def _take(node, ctx, x, shape, axis, index, out):
    try:
        return take(ctx, x, shape, axis, index, out)
    except ValueError as exc:
        raise node.error(str(exc)) from None


@register("Concat")
def concat(node, ctx):
    """Concat along one axis."""
    rank = len(ctx.out_shape(node))
    bottoms = [ctx.bottom(node, i) for i in range(len(node.inputs))]
    if len(bottoms) == 1:
        ctx.alias(node, 0, bottoms[0])
        return
    layer = ctx.add_layer("Concat", bottoms, [node.outputs[0]])
    layer.concat_param.axis = int(node.attr("axis")) % rank


@register("Split")
def split(node, ctx):
    """One Caffe Slice; the output sizes come from shape inference."""
    shape = ctx.in_shape(node)
    axis = int(node.attr("axis", 0)) % len(shape)
    sizes = [ctx.out_shape(node, i)[axis] for i in range(len(node.outputs))]
    if len(sizes) == 1:
        ctx.alias(node, 0, ctx.bottom(node))
        return
    tops = [o or ctx.fresh(f"{node.name}/unused{i}") for i, o in enumerate(node.outputs)]
    layer = ctx.add_layer("Slice", [ctx.bottom(node)], tops)
    layer.slice_param.axis = axis
    layer.slice_param.slice_point.extend(np.cumsum(sizes)[:-1].tolist())


def _slice_params(node, ctx, rank):
    if node.opset < 10:
        starts, ends = node.attr("starts"), node.attr("ends")
        axes, steps = node.attr("axes", list(range(len(starts)))), [1] * len(starts)
    else:
        starts = ctx.const(node, 1, "starts").tolist()
        ends = ctx.const(node, 2, "ends").tolist()
        axes = ctx.optional_const(node, 3, "axes")
        axes = list(range(len(starts))) if axes is None else axes.tolist()
        steps = ctx.optional_const(node, 4, "steps")
        steps = [1] * len(starts) if steps is None else steps.tolist()
    return [int(a) % rank for a in axes], starts, ends, steps


@register("Slice")
def slice_(node, ctx):
    """Per sliced axis, one Caffe Slice (plus a Concat if strided or reversed)."""
    shape = list(ctx.in_shape(node))
    axes, starts, ends, steps = _slice_params(node, ctx, len(shape))
    x, out = ctx.bottom(node), node.outputs[0]
    plans = []
    for a, b, e, st in zip(axes, starts, ends, steps, strict=True):
        b, e = max(min(int(b), 2**62), -(2**62)), max(min(int(e), 2**62), -(2**62))
        index = list(range(shape[a]))[slice(b, e, int(st))]
        if index != list(range(shape[a])):
            plans.append((a, index))
    if not plans:
        ctx.alias(node, 0, x)
        return
    for n, (a, index) in enumerate(plans):
        target = out if n == len(plans) - 1 else ctx.fresh(f"{out}/axis{a}")
        x = _take(node, ctx, x, shape, a, index, target)
        shape[a] = len(index)


@register("Gather")
def gather(node, ctx):
    """Constant indices along one axis: Slice + Concat (+ Reshape for a scalar index)."""
    shape = list(ctx.in_shape(node))
    axis = int(node.attr("axis", 0)) % len(shape)
    idx = np.asarray(ctx.const(node, 1, "the indices"))
    if idx.ndim > 1:
        raise node.error(f"indices of rank {idx.ndim} have no Caffe equivalent")
    index = [int(i) % shape[axis] for i in idx.reshape(-1)]
    if len(index) > MAX_PIECES * 4:
        raise node.error(f"{len(index)} gathered indices are too many for Slice + Concat")
    out = node.outputs[0]
    target = out if idx.ndim == 1 else ctx.fresh(f"{out}/taken")
    x = _take(node, ctx, ctx.bottom(node), shape, axis, index, target)
    if idx.ndim == 0:
        shape[axis] = 1
        reshape_to(ctx, node, x, shape, ctx.out_shape(node), out)
    elif x != out:
        ctx.alias(node, 0, x)
