"""Split (sizes from input, attribute or num_outputs), Slice (positive steps), Gather (constant indices)."""

from __future__ import annotations

import numpy as np

from converters.pytorch.registry import register


@register("Split", notes="torch.split with explicit sizes")
def split(node, ctx):
    """Split into the given sizes (equal parts, last one smaller, as ONNX)."""
    shape = ctx.shape(node.input[0])
    axis = int(ctx.attr(node, "axis", 0))
    axis = axis + len(shape) if axis < 0 else axis
    n = len(node.output)
    if ctx.has_input(node, 1):
        sizes = [int(s) for s in ctx.const(node, 1, "split")]
    elif ctx.attr(node, "split") is not None:
        sizes = [int(s) for s in ctx.attr(node, "split")]
    else:
        dim = shape[axis]
        part = -(-dim // n)
        sizes = [min(part, dim - i * part) for i in range(n)]
    if sum(sizes) != shape[axis] or len(sizes) != n:
        raise ctx.refuse(node, f"split sizes {sizes} do not cover axis {axis} of {list(shape)}")
    ctx.assign(node, f"torch.split({ctx.var(node, 0)}, {sizes}, dim={axis})", n_outputs=n)


@register("Slice", notes="Python indexing with constant starts/ends/axes/steps (steps > 0)")
def slice_(node, ctx):
    """x[..., start:end:step, ...] with ONNX's clamping of out-of-range bounds."""
    shape = ctx.shape(node.input[0])
    if ctx.opset < 10:
        starts, ends = ctx.attr(node, "starts"), ctx.attr(node, "ends")
        axes = ctx.attr(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = ctx.const(node, 1, "starts").tolist()
        ends = ctx.const(node, 2, "ends").tolist()
        axes = (
            ctx.const(node, 3, "axes").tolist()
            if ctx.has_input(node, 3)
            else list(range(len(starts)))
        )
        steps = (
            ctx.const(node, 4, "steps").tolist() if ctx.has_input(node, 4) else [1] * len(starts)
        )
    index = [":"] * len(shape)
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a = a + len(shape) if a < 0 else a
        if st <= 0:
            raise ctx.refuse(node, f"step {st} on axis {a}: torch slicing needs a positive step")
        dim = shape[a]
        s = min(max(s + dim if s < 0 else s, 0), dim)
        e = min(max(e + dim if e < 0 else e, 0), dim)
        index[a] = f"{s}:{e}" + (f":{st}" if st != 1 else "")
    while index and index[-1] == ":":
        index.pop()
    ctx.assign(node, f"{ctx.var(node, 0)}[{', '.join(index) or '...'}]")


@register("Gather", notes="tensor.select / torch.index_select for constant indices")
def gather(node, ctx):
    """Gather with constant indices: a scalar index drops the axis, a 1-D index keeps it."""
    shape = ctx.shape(node.input[0])
    axis = int(ctx.attr(node, "axis", 0))
    axis = axis + len(shape) if axis < 0 else axis
    idx = np.asarray(ctx.const(node, 1, "indices")).astype(np.int64)
    idx = np.where(idx < 0, idx + shape[axis], idx)
    x = ctx.var(node, 0)
    if idx.ndim == 0:
        ctx.assign(node, f"{x}.select({axis}, {int(idx)})")
    elif idx.ndim == 1:
        buf = ctx.add_buffer(node, idx, f"{node.output[0]}_indices")
        ctx.assign(node, f"torch.index_select({x}, {axis}, {buf})")
    else:
        raise ctx.refuse(node, f"indices of rank {idx.ndim} are not supported")
