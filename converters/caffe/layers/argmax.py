"""ArgMax: the top_k indices (as floats) and/or values, with Caffe's exact shapes and ties.

With ``axis``: the output is the bottom's shape with ``shape[axis] = top_k``, holding indices,
or values when ``out_max_val``. Without ``axis``: each item's ``count(1)`` values are ranked as
one vector and the output has ``max(ndim, 3)`` dims ``(N, 1, top_k, 1, ...)`` (indices), or
``(N, 2, top_k, 1, ...)`` with indices in channel 0 and values in channel 1 when ``out_max_val``.

Ties: Caffe partial-sorts ``(value, index)`` pairs with ``std::greater``, so among equal values
the *highest* index ranks first. ONNX ArgMax gets that with ``select_last_index=1``; ONNX TopK
ranks the lowest index first, so for ``top_k > 1`` the axis is reversed before TopK and the
indices are mapped back (``dim - 1 - i``).
"""

from __future__ import annotations

import math

from converters.caffe.layers._axes import canonical_axis
from converters.caffe.registry import register

_INT64_MIN = -(2**63)


def _ranked(ctx, layer, x, axis: int, dim: int, k: int, values: bool, indices: bool, out=None):
    """(float indices, values) of the top ``k`` along ``axis`` (kept, as size k); each is None
    unless asked for. ``out`` names the result when only one is asked for."""
    h = layer.name
    idx = vals = None
    if k == 1:
        if values:
            vals = ctx.reduce("ReduceMax", x, [axis], keepdims=True, output=out, hint=f"{h}/max")
        if indices:
            i64 = ctx.node(
                "ArgMax", [x], hint=f"{h}/argmax", axis=axis, keepdims=1, select_last_index=1
            )
            idx = ctx.node("Cast", [i64], out, hint=f"{h}/index", to=1)
        return idx, vals
    rev = ctx.slice(x, [-1], [_INT64_MIN], [axis], hint=f"{h}/reverse", steps=[-1])
    vals = (out if not indices else None) or ctx.fresh(f"{h}/values")
    ridx = ctx.fresh(f"{h}/rindex")
    ctx.node_multi(
        "TopK", [rev, ctx.ints(f"{h}/k", [k])], [vals, ridx], axis=axis, largest=1, sorted=1
    )
    if indices:
        ridx = ctx.node("Cast", [ridx], hint=f"{h}/rindex_f", to=1)
        last = ctx.const(f"{h}/last", float(dim - 1))
        idx = ctx.node("Sub", [last, ridx], out if not values else None, hint=f"{h}/index")
    return idx, (vals if values else None)


@register("ArgMax")
def argmax(layer, ctx):
    """Top-k indices/values along ``axis``, or over each item flattened (Caffe's no-axis form)."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("argmax_param")
    k = int(p.top_k)
    if p.HasField("axis"):
        axis = canonical_axis(layer, p.axis, len(shape), "argmax_param.axis")
        if not 1 <= k <= shape[axis]:
            raise layer.error(
                f"top_k {k} must be in 1..{shape[axis]} (dim {axis} of {list(shape)})"
            )
        mx = bool(p.out_max_val)
        idx, vals = _ranked(ctx, layer, x, axis, shape[axis], k, mx, not mx, ctx.top_name(layer))
        out_shape = list(shape)
        out_shape[axis] = k
        ctx.set_top(layer, 0, vals if mx else idx, out_shape)
        return
    n, dim = shape[0], math.prod(shape[1:])
    if not 1 <= k <= dim:
        raise layer.error(
            f"top_k {k} must be in 1..{dim} (the {dim} values per item of {list(shape)})"
        )
    flat = ctx.reshape(x, [n, dim], hint=f"{layer.name}/flat") if len(shape) != 2 else x
    idx, vals = _ranked(ctx, layer, flat, 1, dim, k, bool(p.out_max_val), True)
    out_shape = [n, 2 if p.out_max_val else 1, k] + [1] * (max(len(shape), 3) - 3)
    both = idx
    if p.out_max_val:
        both = ctx.node("Concat", [idx, vals], hint=f"{layer.name}/pairs", axis=1)
    y = ctx.reshape(both, out_shape, output=ctx.top_name(layer), hint=layer.name)
    ctx.set_top(layer, 0, y, out_shape)
