"""Power, Exp and Log: affine input, then a power / exponential / logarithm.

Caffe (BVLC ``power_layer.cpp``, ``exp_layer.cpp``, ``log_layer.cpp``), all in float32:

- Power: ``y = (shift + scale * x) ^ power``. When ``power * scale == 0`` Caffe ignores the input
  and fills ``power == 0 ? 1 : shift ^ power`` (so a NaN input still gives 1), which is a
  ConstantOfShape here. The scale, shift and power steps are each skipped when they are the
  identity, exactly as Caffe skips them.
- Exp: ``y = base ^ (shift + scale * x)``, computed by Caffe as
  ``outer * exp(inner * x)`` with ``inner = ln(base) * scale`` and ``outer = base ^ shift``
  (``base: -1`` means e, so ``ln(base) = 1`` exactly).
- Log: ``y = ln(shift + scale * x) / ln(base)``, the division done as a multiplication by
  ``1 / ln(base)`` (again ``base: -1`` means e).
The constants are computed in float32 like Caffe's ``Dtype`` arithmetic.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from converters.caffe.layers.activation import check_one_to_one, finite
from converters.caffe.registry import register

f32 = np.float32


def _chain(layer, ctx, x: str, steps) -> None:
    """Emit ``steps`` [(op, constant or None)] in order; the last one writes the top."""
    steps = [s for s in steps if s is not None]
    y = x
    for i, (op, value) in enumerate(steps):
        out = ctx.top_name(layer) if i == len(steps) - 1 else None
        ins = [y] if value is None else [y, ctx.const(f"{layer.name}/{op.lower()}", value)]
        y = ctx.node(op, ins, out, hint=f"{layer.name}/{op.lower()}")
    ctx.set_top(layer, 0, y, ctx.shape(x))  # no step at all: the top aliases the bottom


def _params(layer, field: str):
    p = layer.param(field)
    return tuple(
        f32(finite(layer, f"{field}.{n}", getattr(p, n))) for n in ("base", "scale", "shift")
    )


def _log_base(layer, field: str, base) -> np.float32:
    if base == f32(-1):
        return f32(1)
    if not base > 0:
        raise layer.error(f"{field}.base must be -1 (meaning e) or positive, got {float(base):g}")
    return np.log(base)


@register("Power")
def power(layer, ctx):
    """(shift + scale * x) ^ power, skipping identity steps; constant when power*scale == 0."""
    check_one_to_one(layer)
    p = layer.param("power_param")
    pw, scale, shift = (f32(finite(layer, f"power_param.{n}", getattr(p, n)))
                        for n in ("power", "scale", "shift"))  # fmt: skip
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if pw * scale == 0:
        with np.errstate(all="ignore"):  # 0 ^ -1 is inf in Caffe too
            value = f32(1) if pw == 0 else f32(shift**pw)
        fill = helper.make_tensor("value", TensorProto.FLOAT, [1], [float(value)])
        y = ctx.node("ConstantOfShape", [ctx.ints(f"{layer.name}/shape", shape)],
                     ctx.top_name(layer), value=fill)  # fmt: skip
        ctx.set_top(layer, 0, y, shape)
        return
    _chain(layer, ctx, x, [
        ("Mul", scale) if scale != 1 else None,
        ("Add", shift) if shift != 0 else None,
        ("Pow", pw) if pw != 1 else None,
    ])  # fmt: skip


@register("Exp")
def exp(layer, ctx):
    """base ^ (shift + scale * x) as outer * exp(inner * x), like Caffe."""
    check_one_to_one(layer)
    base, scale, shift = _params(layer, "exp_param")
    inner = f32(_log_base(layer, "exp_param", base) * scale)
    with np.errstate(over="ignore"):  # overflow is reported below, in one line
        if shift == 0:
            outer = f32(1)
        else:
            outer = f32(np.exp(shift)) if base == f32(-1) else f32(base**shift)
    if not (np.isfinite(inner) and np.isfinite(outer)):
        raise layer.error(f"exp_param base {float(base):g} with shift {float(shift):g} "
                          f"and scale {float(scale):g} overflows float32")  # fmt: skip
    _chain(layer, ctx, ctx.input(layer), [
        ("Mul", inner) if inner != 1 else None,
        ("Exp", None),
        ("Mul", outer) if outer != 1 else None,
    ])  # fmt: skip


@register("Log")
def log(layer, ctx):
    """ln(shift + scale * x) * (1 / ln(base)), like Caffe."""
    check_one_to_one(layer)
    base, scale, shift = _params(layer, "log_param")
    log_base = _log_base(layer, "log_param", base)
    if log_base == 0:
        raise layer.error("log_param.base 1 has no logarithm (division by ln(1) = 0)")
    base_scale = f32(f32(1) / log_base)
    _chain(layer, ctx, ctx.input(layer), [
        ("Mul", scale) if scale != 1 else None,
        ("Add", shift) if shift != 0 else None,
        ("Log", None),
        ("Mul", base_scale) if base_scale != 1 else None,
    ])  # fmt: skip
