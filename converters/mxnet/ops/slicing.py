"""Split -> SliceChannel (equal parts) or slice_axis per part; Slice -> slice; Pad -> Pad."""

from __future__ import annotations

import numpy as np

from converters.mxnet.ops._geometry import pad_attrs
from converters.mxnet.registry import register


@register("Split")
def split(node, ctx):
    """SliceChannel(num_outputs, axis) for equal parts, else one slice_axis per part."""
    shape = ctx.in_shape(node)
    axis = int(node.attr("axis", 0)) % len(shape)
    sizes = [ctx.out_shape(node, k)[axis] for k in range(len(node.outputs))]
    data = ctx.sym(node, 0)
    if len(set(sizes)) == 1 and len(sizes) > 1:
        attrs = {"num_outputs": len(sizes), "axis": axis}
        ctx.out(node, "SliceChannel", [data], attrs, n_out=len(sizes))
        return
    start = 0
    for k, size in enumerate(sizes):
        ref = ctx.op("slice_axis", [data], {"axis": axis, "begin": start, "end": start + size},
                     hint=node.outputs[k] or f"{node.name}/{k}")  # fmt: skip
        if node.outputs[k]:
            ctx.bind(node, ref, k)
        start += size


@register("Slice")
def slice_(node, ctx):
    """slice(begin, end, step) over every axis (steps > 0)."""
    shape = ctx.in_shape(node)
    starts = ctx.const(node, 1, "starts").astype(np.int64)
    ends = ctx.const(node, 2, "ends").astype(np.int64)
    axes = ctx.optional_const(node, 3, "axes")
    steps = ctx.optional_const(node, 4, "steps")
    axes = list(range(len(starts))) if axes is None else [int(a) % len(shape) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    begin, end, step = [0] * len(shape), list(shape), [1] * len(shape)
    for a, b, e, s in zip(axes, starts, ends, steps, strict=True):
        if s <= 0:
            raise node.error(f"step {s} on axis {a}: only positive steps")
        b = int(b) + shape[a] if b < 0 else int(b)
        e = int(e) + shape[a] if e < 0 else int(e)
        begin[a], end[a], step[a] = min(max(b, 0), shape[a]), min(max(e, 0), shape[a]), s
    if tuple(ctx.out_shape(node)) == tuple(shape):
        ctx.alias(node)
        return
    attrs = {"begin": tuple(begin), "end": tuple(end), "step": tuple(step)}
    ctx.out(node, "slice", [ctx.sym(node, 0)], attrs)


@register("Pad")
def pad(node, ctx):
    """Pad (constant mode) of the spatial dims of a 4-D/5-D tensor."""
    mode = node.attr("mode", "constant")
    if mode != "constant":
        raise node.error(f"mode {mode!r} (only constant)")
    rank = len(ctx.in_shape(node))
    pads = [int(p) for p in (ctx.const(node, 1, "pads") if node.opset >= 11 else node.attr("pads"))]
    if node.opset >= 18 and node.input(3) is not None:
        raise node.error("the axes input is not supported")
    value = 0.0
    if node.opset >= 11 and node.input(2) is not None:
        value = float(np.asarray(ctx.const(node, 2, "the pad value")).reshape(()))
    elif node.opset < 11:
        value = float(node.attr("value", 0.0))
    begin, end = pads[:rank], pads[rank:]
    if any(begin[:2]) or any(end[:2]) or min(pads) < 0:
        raise node.error(f"pads {pads}: MXNet pads the spatial dims only, by >= 0")
    ctx.out(node, "Pad", [ctx.sym(node, 0)], pad_attrs(node, begin[2:], end[2:], value))
