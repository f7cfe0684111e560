"""Gemm with a constant B -> nn.Linear (alpha/beta other than 1 kept as explicit factors)."""

from __future__ import annotations

import numpy as np

from converters.pytorch.registry import register


@register("Gemm", notes="nn.Linear for constant B; transA as .t(), alpha/beta as factors")
def gemm(node, ctx):
    """Y = alpha * A' B' + beta * C as nn.Linear (weight = B' transposed)."""
    b = ctx.const(node, 1, "B")
    if b.ndim != 2:
        raise ctx.refuse(node, f"B must be 2-D, got shape {list(b.shape)}")
    weight = b if ctx.attr(node, "transB", 0) else b.T
    out_f, in_f = weight.shape
    alpha = float(ctx.attr(node, "alpha", 1.0))
    beta = float(ctx.attr(node, "beta", 1.0))
    has_c = ctx.has_input(node, 2)
    bias = None
    if has_c:
        c = ctx.const(node, 2, "C")
        if c.size not in (1, out_f) or (c.ndim == 2 and c.shape[0] != 1):
            raise ctx.refuse(node, f"C of shape {list(c.shape)} is not a per-output bias")
        bias = np.broadcast_to(c.reshape(-1), (out_f,)).astype(weight.dtype)
    # Folding alpha/beta into the weights would round them: keep them as factors unless 1.
    fold_bias = has_c and alpha == 1.0 and beta == 1.0
    params = {"weight": weight}
    if fold_bias:
        params["bias"] = bias
    layer = ctx.add_module(node, f"nn.Linear({in_f}, {out_f}, bias={fold_bias})", params)
    a = ctx.var(node, 0)
    if ctx.attr(node, "transA", 0):
        a = f"{a}.t()"
    expr = f"{layer}({a})"
    if alpha != 1.0:
        expr = f"{alpha!r} * {expr}"
    if has_c and not fold_bias:
        c_var = ctx.add_buffer(node, bias, f"{node.output[0]}_C")
        expr = f"{expr} + {beta!r} * {c_var}" if beta != 1.0 else f"{expr} + {c_var}"
    ctx.assign(node, expr)


@register("MatMul", notes="torch.matmul (a constant operand becomes a buffer)")
def matmul(node, ctx):
    """torch.matmul, numpy broadcasting as ONNX."""
    ctx.assign(node, f"torch.matmul({ctx.var(node, 0)}, {ctx.var(node, 1)})")
