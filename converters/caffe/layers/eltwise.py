"""Eltwise (PROD, SUM with coeff, MAX; any number of equal-shaped bottoms) and Axpy (fork).

Eltwise: Caffe requires identical bottom shapes (no broadcasting) and at least two bottoms.
``coeff`` (one per bottom) weights a SUM: ``y = sum(c_i * x_i)``; Caffe refuses coeff on PROD
and ignores it on MAX, and so do we. Two inputs use the binary Add/Mul/Max (easiest for the
optimizer to fold); more use the variadic Sum/Max, and PROD a chain of Mul. ``[1, -1]`` is a Sub.
A SUM written in place over its first bottom (``top == bottom[0]``) drops that bottom, as real
Caffe computes it: ``EltwiseLayer::Forward_cpu`` zeroes the top before accumulating, and the top
is bottom 0's memory. Reading the in-place blob again (``bottom: x ... bottom: x top: x``) is
refused, as Caffe refuses it (the Split it inserts leaves ``x`` with two producers).

Axpy (SENet fork): ``top = a * x + y`` with ``a`` of shape (N, C) or (N, C, 1, 1) from bottom 0,
``x`` bottom 1 and ``y`` bottom 2 of equal shape (N, C, ...).
"""

from __future__ import annotations

from converters.caffe.layers._axes import same_shapes
from converters.caffe.registry import register

PROD, SUM, MAX = 0, 1, 2


def _sum(layer, ctx, xs: list[str], coeffs: list[float], out: str) -> str:
    if len(xs) == 2 and coeffs == [1.0, -1.0]:
        return ctx.node("Sub", xs, out)
    terms = []
    for i, (x, c) in enumerate(zip(xs, coeffs, strict=True)):
        if c != 1.0:
            x = ctx.node(
                "Mul", [x, ctx.const(f"{layer.name}/coeff{i}", c)], hint=f"{layer.name}/term{i}"
            )
        terms.append(x)
    return ctx.node("Add" if len(terms) == 2 else "Sum", terms, out)


@register("Eltwise")
def eltwise(layer, ctx):
    """PROD / SUM (with coeff) / MAX over two or more equal-shaped bottoms."""
    if len(layer.bottoms) < 2:
        raise layer.error(f"needs at least 2 bottom blobs, got {len(layer.bottoms)}")
    xs = ctx.inputs(layer)
    shapes = [ctx.shape(x) for x in xs]
    same_shapes(layer, shapes)
    p = layer.param("eltwise_param")
    coeffs = [float(c) for c in p.coeff]
    if coeffs and len(coeffs) != len(xs):
        raise layer.error(f"{len(coeffs)} coeff value(s) for {len(xs)} bottoms; give one each")
    out = ctx.top_name(layer)
    if p.operation == SUM:
        coeffs = coeffs or [1.0] * len(xs)
        if layer.tops and layer.tops[0] == layer.bottoms[0]:
            if layer.bottoms[0] in layer.bottoms[1:]:
                raise layer.error(
                    f"writes '{layer.tops[0]}' in place but also reads it as a later bottom; "
                    "Caffe refuses this net (top blob produced by multiple sources)"
                )
            xs, coeffs = xs[1:], coeffs[1:]  # Caffe zeroes bottom 0 (= the top) first
        if len(xs) == 1:
            c = ctx.const(f"{layer.name}/coeff1", coeffs[0])
            y = ctx.node("Mul", [xs[0], c], out)
        else:
            y = _sum(layer, ctx, xs, coeffs, out)
    elif p.operation == PROD:
        if coeffs:
            raise layer.error("coeff applies to SUM only (Caffe refuses it for PROD)")
        y = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            y = ctx.node(
                "Mul", [y, x], out if i == len(xs) - 1 else None, hint=f"{layer.name}/prod{i}"
            )
    elif p.operation == MAX:
        y = ctx.node("Max", xs, out)
    else:
        raise layer.error(f"operation {p.operation} is not PROD=0, SUM=1 or MAX=2")
    ctx.set_top(layer, 0, y, shapes[0])


@register("Axpy")
def axpy(layer, ctx):
    """``a * x + y`` with a per-(N, C) scale ``a`` (bottoms: a, x, y)."""
    if len(layer.bottoms) != 3:
        raise layer.error(f"expected 3 bottom blobs (a, x, y), got {len(layer.bottoms)}")
    a, x, y = ctx.inputs(layer)
    sa, sx, sy = ctx.shape(a), ctx.shape(x), ctx.shape(y)
    if sx != sy:
        raise layer.error(
            f"x '{layer.bottoms[1]}' {list(sx)} and y '{layer.bottoms[2]}' "
            f"{list(sy)} must have the same shape"
        )
    ok = len(sx) >= 2 and tuple(sa[:2]) == tuple(sx[:2]) and all(d == 1 for d in sa[2:])
    if not ok or len(sa) not in (2, len(sx)):
        raise layer.error(
            f"a '{layer.bottoms[0]}' has shape {list(sa)}; expected "
            f"{list(sx[:2])} or {[*sx[:2], *[1] * (len(sx) - 2)]}"
        )
    if len(sa) != len(sx):  # (N, C) must broadcast as (N, C, 1, 1), not against the last dims
        a = ctx.unsqueeze(a, list(range(2, len(sx))), hint=f"{layer.name}/a")
    ax = ctx.node("Mul", [a, x], hint=f"{layer.name}/ax")
    ctx.set_top(layer, 0, ctx.node("Add", [ax, y], ctx.top_name(layer)), sx)
