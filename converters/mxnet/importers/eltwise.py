"""Element-wise binary ops (elemwise_*, broadcast_*, the symbol operators), add_n, and the
``*_scalar`` forms (the scalar as a float32 constant, which is what MXNet computes with)."""

from __future__ import annotations

import numpy as np

from converters.mxnet.source import register

_BINARY = {
    "Add": ("elemwise_add", "broadcast_add", "broadcast_plus", "_Plus", "_plus", "_add"),
    "Sub": ("elemwise_sub", "broadcast_sub", "broadcast_minus", "_Minus", "_minus", "_sub"),
    "Mul": ("elemwise_mul", "broadcast_mul", "_Mul", "_mul"),
    "Div": ("elemwise_div", "broadcast_div", "_Div", "_div"),
    "Max": ("broadcast_maximum", "_maximum", "_Maximum"),
    "Min": ("broadcast_minimum", "_minimum", "_Minimum"),
    "Pow": ("broadcast_power", "_power", "_Power"),
}
_OP = {name: onnx_op for onnx_op, names in _BINARY.items() for name in names}
# MXNet scalar op -> (ONNX op, scalar first?)
_SCALAR = {"_plus_scalar": ("Add", False), "_PlusScalar": ("Add", False),
           "_minus_scalar": ("Sub", False), "_MinusScalar": ("Sub", False),
           "_rminus_scalar": ("Sub", True), "_RMinusScalar": ("Sub", True),
           "_mul_scalar": ("Mul", False), "_MulScalar": ("Mul", False),
           "_div_scalar": ("Div", False), "_DivScalar": ("Div", False),
           "_rdiv_scalar": ("Div", True), "_RDivScalar": ("Div", True),
           "_power_scalar": ("Pow", False), "_rpower_scalar": ("Pow", True),
           "_maximum_scalar": ("Max", False), "_minimum_scalar": ("Min", False)}  # fmt: skip


@register(*_OP)
def binary(node, ctx):
    """Add / Sub / Mul / Div / Max / Min / Pow (numpy broadcasting, as MXNet's broadcast_*)."""
    ctx.emit(_OP[node.op], [ctx.input(node, 0), ctx.input(node, 1)], ctx.out(node))


@register(*_SCALAR)
def scalar(node, ctx):
    """The binary op with the scalar as a one-value float32 constant."""
    op, first = _SCALAR[node.op]
    value = ctx.const(f"{node.name}/scalar", np.float32(node.float("scalar", 0.0)))
    x = ctx.input(node, 0)
    ctx.emit(op, [value, x] if first else [x, value], ctx.out(node))


@register("add_n", "ElementWiseSum")
def add_n(node, ctx):
    """Sum of every input."""
    ctx.emit("Sum", [ctx.input(node, i) for i in range(len(node.inputs))], ctx.out(node))
