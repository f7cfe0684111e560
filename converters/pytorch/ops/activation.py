"""Element-wise activations: Relu, PRelu, LeakyRelu, Sigmoid, Tanh, Clip, Elu, Exp, Abs..."""

from __future__ import annotations

import numpy as np

from converters.pytorch.registry import register

_MODULES = {"Relu": "nn.ReLU()", "Sigmoid": "nn.Sigmoid()", "Tanh": "nn.Tanh()"}


@register("Relu", "Sigmoid", "Tanh", notes="nn.ReLU / nn.Sigmoid / nn.Tanh")
def simple(node, ctx):
    """Parameter-free activation modules."""
    layer = ctx.add_module(node, _MODULES[node.op_type], {})
    ctx.assign(node, f"{layer}({ctx.var(node, 0)})")


@register("LeakyRelu", notes="nn.LeakyReLU(alpha)")
def leaky_relu(node, ctx):
    """nn.LeakyReLU with ONNX's alpha (default 0.01)."""
    alpha = float(ctx.attr(node, "alpha", 0.01))
    layer = ctx.add_module(node, f"nn.LeakyReLU({alpha!r})", {})
    ctx.assign(node, f"{layer}({ctx.var(node, 0)})")


@register("PRelu", notes="nn.PReLU when the slope is per channel (axis 1) or shared; else where()")
def prelu(node, ctx):
    """nn.PReLU(C) for a slope broadcasting along axis 1 only, nn.PReLU(1) for one slope."""
    slope = ctx.const(node, 1, "slope")
    xshape = ctx.shape(node.input[0])
    x = ctx.var(node, 0)
    # ONNX broadcasts the slope to X numpy-style (aligned at the last axis).
    full = np.broadcast_to(slope, xshape) if slope.ndim <= len(xshape) else None
    if full is None:
        raise ctx.refuse(
            node, f"slope shape {list(slope.shape)} does not broadcast to {list(xshape)}"
        )
    aligned = (1,) * (len(xshape) - slope.ndim) + slope.shape
    if slope.size == 1:
        layer = ctx.add_module(node, "nn.PReLU(1)", {"weight": slope.reshape(1)})
        ctx.assign(node, f"{layer}({x})")
    elif (
        len(xshape) >= 2
        and aligned[1] == xshape[1]
        and all(d == 1 for i, d in enumerate(aligned) if i != 1)
    ):
        layer = ctx.add_module(node, f"nn.PReLU({xshape[1]})", {"weight": slope.reshape(-1)})
        ctx.assign(node, f"{layer}({x})")
    else:
        s = ctx.add_buffer(node, slope, f"{node.output[0]}_slope")
        ctx.assign(node, f"torch.where({x} < 0, {x} * {s}, {x})")


@register("Clip", notes="torch.clamp with constant min/max (opset 6 attributes or 11+ inputs)")
def clip(node, ctx):
    """torch.clamp(x, min, max)."""
    if ctx.opset < 11:
        lo, hi = ctx.attr(node, "min"), ctx.attr(node, "max")
    else:
        lo = float(ctx.const(node, 1, "min")) if ctx.has_input(node, 1) else None
        hi = float(ctx.const(node, 2, "max")) if ctx.has_input(node, 2) else None
    args = [ctx.var(node, 0)]
    if lo is not None:
        args.append(f"min={float(np.float32(lo))!r}")
    if hi is not None:
        args.append(f"max={float(np.float32(hi))!r}")
    ctx.assign(node, f"torch.clamp({', '.join(args)})")


_FUNCS = {
    "Exp": "torch.exp",
    "Abs": "torch.abs",
    "Sqrt": "torch.sqrt",
    "Neg": "torch.neg",
    "Log": "torch.log",
    "Reciprocal": "torch.reciprocal",
    "Floor": "torch.floor",
    "Ceil": "torch.ceil",
}


@register(*_FUNCS, notes="torch.<function> element-wise")
def unary(node, ctx):
    """Element-wise unary functions."""
    ctx.assign(node, f"{_FUNCS[node.op_type]}({ctx.var(node, 0)})")
