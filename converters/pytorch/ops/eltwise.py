"""Add / Sub / Mul / Div / Max / Min / Sum: Python operators, constants as buffers or scalars."""

from __future__ import annotations

import numpy as np

from converters.pytorch.registry import register

_OPS = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}


def _operand(node, ctx, i):
    if ctx.is_const(node, i):
        value = ctx.consts[node.input[i]]
        if value.size == 1 and value.ndim == 0 and value.dtype == np.float32:
            # A float32 scalar: its float64 repr is exact and torch rounds it back to itself.
            return repr(float(value))
    return ctx.var(node, i)


@register(*_OPS, notes="a <op> b with numpy broadcasting")
def binary(node, ctx):
    """Binary arithmetic on float tensors (integer shape arithmetic is folded beforehand)."""
    a, b = _operand(node, ctx, 0), _operand(node, ctx, 1)
    ctx.assign(node, f"{a} {_OPS[node.op_type]} {b}")


@register("Max", "Min", "Sum", notes="torch.maximum / torch.minimum / + over all inputs")
def variadic(node, ctx):
    """Element-wise reduction over any number of inputs."""
    args = [ctx.var(node, i) for i in range(len(node.input))]
    if node.op_type == "Sum":
        expr = " + ".join(args)
    else:
        fn = "torch.maximum" if node.op_type == "Max" else "torch.minimum"
        expr = args[0]
        for a in args[1:]:
            expr = f"{fn}({expr}, {a})"
    ctx.assign(node, expr)
