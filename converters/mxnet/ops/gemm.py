"""Gemm / MatMul with a constant right-hand side -> FullyConnected.

MXNet computes ``x @ W.T + b`` with W of shape (num_hidden, K): ONNX's B (K, N) is stored
transposed (``transB=1`` already has that layout), ``alpha`` is folded into W and ``beta`` into
the bias. ``flatten: False`` on N-D MatMul inputs applies the product to the last axis, as ONNX.
"""

from __future__ import annotations

import numpy as np

from converters.mxnet.registry import register


@register("Gemm")
def gemm(node, ctx):
    """FullyConnected: W = alpha * op(B)^T, bias = beta * C (per output column)."""
    if node.attr("transA", 0):
        raise node.error("transA=1 (a transposed data input) is not supported")
    b = np.asarray(ctx.const(node, 1, "B (the weight)"), dtype=np.float32)
    w = b if node.attr("transB", 0) else b.T
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if alpha != 1.0:
        w = w * np.float32(alpha)
    out = node.outputs[0]
    inputs = [ctx.sym(node, 0), ctx.weight(f"{out}_weight", np.ascontiguousarray(w))]
    c = ctx.optional_const(node, 2, "C (the bias)")
    if c is not None:
        c = np.asarray(c, dtype=np.float32)
        if c.size == 1:
            c = np.full(w.shape[0], c.reshape(()), np.float32)
        elif c.size != w.shape[0] or c.shape[-1] != w.shape[0]:
            raise node.error(f"C of shape {list(c.shape)} is not a per-column bias")
        inputs.append(ctx.weight(f"{out}_bias", (c.reshape(-1) * np.float32(beta))))
    attrs = {"num_hidden": w.shape[0], "no_bias": c is None, "flatten": True}
    ctx.out(node, "FullyConnected", inputs, attrs)


@register("MatMul")
def matmul(node, ctx):
    """FullyConnected (flatten False, no bias) for a constant 2-D B; dot/batch_dot otherwise."""
    if ctx.is_const(node, 1) and not ctx.is_const(node, 0):
        b = np.asarray(ctx.const(node, 1, "B"), dtype=np.float32)
        if b.ndim == 2:
            out = node.outputs[0]
            w = ctx.weight(f"{out}_weight", np.ascontiguousarray(b.T))
            attrs = {"num_hidden": b.shape[1], "no_bias": True, "flatten": False}
            ctx.out(node, "FullyConnected", [ctx.sym(node, 0), w], attrs)
            return
    ranks = {len(ctx.in_shape(node, i)) for i in (0, 1)}
    if ranks == {2}:
        ctx.out(node, "dot", [ctx.sym(node, 0), ctx.sym(node, 1)])
    elif ranks == {3}:
        ctx.out(node, "batch_dot", [ctx.sym(node, 0), ctx.sym(node, 1)])
    else:
        raise node.error(f"MatMul of ranks {sorted(ranks)} (2-D and 3-D operands only)")
