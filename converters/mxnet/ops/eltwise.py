"""Binary and variadic element-wise ops: broadcast_* and the *_scalar forms.

A single-value constant operand becomes the op's ``scalar`` attribute (written as the exact
float32 value, which MXNet reads as a double and casts back); any other constant is a weight
in the params file, broadcast numpy-style as in ONNX.
"""

from __future__ import annotations

import numpy as np

from converters.mxnet.registry import register

_BROADCAST = {"Add": "broadcast_add", "Sub": "broadcast_sub", "Mul": "broadcast_mul",
              "Div": "broadcast_div", "Pow": "broadcast_power", "Max": "broadcast_maximum",
              "Min": "broadcast_minimum", "Sum": "broadcast_add", "Mean": "broadcast_add"}  # fmt: skip
# (data op scalar, scalar op data)
_SCALAR = {"Add": ("_plus_scalar", "_plus_scalar"), "Sub": ("_minus_scalar", "_rminus_scalar"),
           "Mul": ("_mul_scalar", "_mul_scalar"), "Div": ("_div_scalar", "_rdiv_scalar"),
           "Pow": ("_power_scalar", "_rpower_scalar"),
           "Max": ("_maximum_scalar", "_maximum_scalar"),
           "Min": ("_minimum_scalar", "_minimum_scalar")}  # fmt: skip


def _scalar(node, ctx, i: int):
    """The value of input ``i`` if it is a one-element float constant not widening the output."""
    if not ctx.is_const(node, i):
        return None
    value = np.asarray(ctx.consts[node.input(i)])
    if value.size != 1 or value.dtype != np.float32:
        return None
    other = ctx.in_shape(node, 1 - i)
    if tuple(other) != tuple(ctx.out_shape(node)):
        return None
    return float(value.reshape(()))


@register("Add", "Sub", "Mul", "Div", "Pow")
def binary(node, ctx):
    """broadcast_add/sub/mul/div/power, or _*_scalar with a one-value constant."""
    if ctx.is_const(node, 0) and ctx.is_const(node, 1):
        raise node.error("both operands are constant (should have been folded)")
    for i in (1, 0):
        s = _scalar(node, ctx, i)
        if s is not None:
            op = _SCALAR[node.op][0 if i == 1 else 1]
            ctx.out(node, op, [ctx.sym(node, 1 - i)], {"scalar": s})
            return
    ctx.out(node, _BROADCAST[node.op], [ctx.sym(node, 0), ctx.sym(node, 1)])


@register("Max", "Min", "Sum", "Mean")
def variadic(node, ctx):
    """Chained broadcast_maximum / minimum / add (Mean: the sum divided by the count)."""
    ins = [i for i in range(len(node.inputs)) if node.input(i) is not None]
    if len(ins) == 1:
        ctx.alias(node, ins[0])
        return
    op = _BROADCAST[node.op]
    acc = ctx.sym(node, ins[0])
    last = len(ins) - 1 if node.op != "Mean" else len(ins)
    for k, i in enumerate(ins[1:], start=1):
        if k == last:
            ctx.out(node, op, [acc, ctx.sym(node, i)])
            return
        acc = ctx.op(op, [acc, ctx.sym(node, i)], hint=f"{node.name}/{k}")
    ctx.out(node, "_div_scalar", [acc], {"scalar": float(len(ins))})
