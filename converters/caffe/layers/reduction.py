"""Reduction: SUM, ASUM, SUMSQ or MEAN over *all* dims from ``axis`` (default 0) to the end.

Caffe keeps ``shape[:axis]`` and drops every later dim (``axis: 0`` gives a 0-D scalar), then
multiplies by ``coeff`` (default 1). ONNX: ReduceSum / ReduceL1 / ReduceSumSquare / ReduceMean
over ``axis..ndim-1`` with ``keepdims=0``, and a Mul when ``coeff != 1``.
"""

from __future__ import annotations

from converters.caffe.layers._axes import canonical_axis
from converters.caffe.registry import register

_OPS = {1: "ReduceSum", 2: "ReduceL1", 3: "ReduceSumSquare", 4: "ReduceMean"}
_NAMES = {1: "SUM", 2: "ASUM", 3: "SUMSQ", 4: "MEAN"}


@register("Reduction")
def reduction(layer, ctx):
    """SUM/ASUM/SUMSQ/MEAN over dims ``axis..end``, times ``coeff``."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("reduction_param")
    if p.operation not in _OPS:
        raise layer.error(
            f"operation {p.operation} is not one of "
            f"{', '.join(f'{v}={k}' for k, v in _NAMES.items())}"
        )
    axis = canonical_axis(layer, p.axis, len(shape), "reduction_param.axis")
    coeff = float(p.coeff)
    top = ctx.top_name(layer)
    y = ctx.reduce(
        _OPS[p.operation],
        x,
        range(axis, len(shape)),
        keepdims=False,
        output=top if coeff == 1.0 else None,
        hint=f"{layer.name}/reduce",
    )
    if coeff != 1.0:
        y = ctx.node("Mul", [y, ctx.const(f"{layer.name}/coeff", coeff)], top)
    ctx.set_top(layer, 0, y, shape[:axis])
