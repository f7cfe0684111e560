"""Gemm / MatMul with a constant weight -> InnerProduct.

Caffe's InnerProduct stores ``W`` as ``(N_out, K)`` and computes ``y = x W^T + b`` over the dims
from ``axis`` on. ONNX ``Gemm`` computes ``alpha * A' B' + beta * C``: with ``transB = 1`` B is
already ``(N_out, K)``; ``alpha`` is folded into W and ``beta`` into the bias (in float64).
``MatMul(x, B)`` with a 2-D constant ``B (K, N_out)`` is an InnerProduct over the last axis.
"""

from __future__ import annotations

import numpy as np

from converters.onnx2caffe.registry import register


def _inner_product(node, ctx, weight, bias, axis: int) -> None:
    blobs = [weight] if bias is None else [weight, bias]
    layer = ctx.add_layer("InnerProduct", [ctx.bottom(node)], [node.outputs[0]], blobs)
    param = layer.inner_product_param
    param.num_output = int(weight.shape[0])
    param.bias_term = bias is not None
    if axis != 1:
        param.axis = axis


@register("Gemm")
def gemm(node, ctx):
    """InnerProduct; alpha/beta folded into the weights."""
    if node.attr("transA", 0):
        raise node.error("transA=1 (a transposed data input) has no InnerProduct equivalent")
    if ctx.is_const(node.input(0)) or len(ctx.in_shape(node)) != 2:
        raise node.error("input A must be a 2-D tensor and B the constant weight")
    b = ctx.const(node, 1, "the weight B")
    w = b if node.attr("transB", 0) else b.T  # (N_out, K)
    alpha = float(node.attr("alpha", 1.0))
    if alpha != 1.0:
        w = w.astype(np.float64) * alpha  # one rounding, in add_layer's cast to float32
    n_out = w.shape[0]
    bias = None
    c = ctx.optional_const(node, 2, "the bias C")
    if c is not None:
        c = np.asarray(c, dtype=np.float64) * float(node.attr("beta", 1.0))
        if c.size not in (1, n_out) or (c.ndim == 2 and c.shape[0] != 1):
            raise node.error(f"bias C of shape {list(c.shape)} is not one value per output")
        bias = np.broadcast_to(c.reshape(-1), (n_out,))
    _inner_product(node, ctx, w, bias, axis=1)


@register("MatMul")
def matmul(node, ctx):
    """InnerProduct over the last axis when the right operand is a 2-D constant."""
    if ctx.is_const(node.input(0)) or not ctx.is_const(node.input(1)):
        raise node.error("only tensor x constant (K, N) products map to InnerProduct")
    b = ctx.const(node, 1, "the weight")
    rank = len(ctx.in_shape(node))
    if b.ndim != 2 or rank < 2:
        raise node.error(f"needs a 2-D constant right operand and rank >= 2 input, got "
                         f"{list(b.shape)} and rank {rank}")  # fmt: skip
    _inner_product(node, ctx, b.T, None, axis=rank - 1)
