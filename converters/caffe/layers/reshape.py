"""Flatten and Reshape, both computed as an explicit static ONNX Reshape.

Flatten collapses ``[axis .. end_axis]`` inclusive (defaults 1 and -1) into one dim; unlike ONNX
Flatten the result keeps the dims after ``end_axis``. Reshape replaces the dims
``[axis, axis + num_axes)`` (``num_axes: -1`` = to the end; a negative ``axis`` counts from the
end with -1 meaning *after* the last dim) with ``shape.dim``, where 0 copies the bottom dim at the
same position and one -1 is inferred from the element count. The target shape is resolved here,
by Caffe's rules, so ONNX never sees 0 or -1 (whose ONNX meaning differs: ONNX's 0 is relative to
the whole shape, Caffe's to ``axis``).
"""

from __future__ import annotations

import math

from converters.caffe.layers._axes import canonical_axis
from converters.caffe.registry import register


def _emit(layer, ctx, x, out_shape) -> None:
    y = ctx.reshape(x, out_shape, output=ctx.top_name(layer), hint=layer.name)
    ctx.set_top(layer, 0, y, out_shape)


@register("Flatten")
def flatten(layer, ctx):
    """Collapse dims ``axis..end_axis`` (inclusive); later dims are kept."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("flatten_param")
    start = canonical_axis(layer, p.axis, len(shape), "flatten_param.axis")
    end = canonical_axis(layer, p.end_axis, len(shape), "flatten_param.end_axis")
    if end < start:
        raise layer.error(
            f"end_axis {p.end_axis} comes before axis {p.axis} for a {len(shape)}-D bottom"
        )
    _emit(layer, ctx, x, [*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :]])


def _reshape_range(layer, p, ndim: int) -> tuple[int, int]:
    # Caffe: a negative axis counts from one past the end (-1 -> ndim), unlike most layers.
    start = p.axis if p.axis >= 0 else ndim + p.axis + 1
    if not 0 <= start <= ndim:
        raise layer.error(f"reshape_param.axis {p.axis} is out of range for a {ndim}-D bottom")
    if p.num_axes < -1:
        raise layer.error(f"reshape_param.num_axes must be >= -1, got {p.num_axes}")
    end = ndim if p.num_axes == -1 else start + p.num_axes
    if end > ndim:
        raise layer.error(f"axis {p.axis} + num_axes {p.num_axes} exceeds the bottom's {ndim} dims")
    return start, end


@register("Reshape")
def reshape(layer, ctx):
    """Reshape with Caffe's 0 (copy) and -1 (infer) relative to ``axis``/``num_axes``."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("reshape_param")
    dims = [int(d) for d in p.shape.dim]
    start, end = _reshape_range(layer, p, len(shape))
    new = list(dims)
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= len(shape):
                raise layer.error(
                    f"shape.dim[{i}] is 0 but the bottom has no dim {start + i} "
                    f"to copy (bottom shape {list(shape)})"
                )
            new[i] = shape[start + i]
        elif d < -1:
            raise layer.error(f"shape.dim[{i}] is {d}; only positive values, 0 and -1 are valid")
    if new.count(-1) > 1:
        raise layer.error(f"shape {dims} has more than one -1")
    out = [*shape[:start], *new, *shape[end:]]
    total = math.prod(shape)
    known = math.prod(d for d in out if d != -1)
    if -1 in out:
        if known == 0 or total % known:
            raise layer.error(
                f"cannot infer the -1 in shape {dims}: {total} elements "
                f"(bottom {list(shape)}) are not a multiple of {known}"
            )
        out[out.index(-1)] = total // known
    elif known != total:
        raise layer.error(
            f"shape {dims} gives {known} elements, the bottom {list(shape)} has {total}"
        )
    _emit(layer, ctx, x, out)
