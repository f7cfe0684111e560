"""FullyConnected -> Flatten + Gemm (``flatten``, MXNet's default) or MatMul + Add (last axis)."""

from __future__ import annotations

from converters.mxnet.source import register


@register("FullyConnected")
def fully_connected(node, ctx):
    """Gemm(transB=1) after Flatten(axis=1), or MatMul(W^T) + bias on the last axis."""
    x, w = ctx.input(node, 0), ctx.param(node, 1, "weight")
    bias = None if node.bool("no_bias", False) else ctx.input(node, 2)
    rank = len(ctx.shape(node, x))
    if node.bool("flatten", True) or rank == 2:
        if rank != 2:
            x = ctx.emit("Flatten", [x], hint=f"{node.name}/flatten", axis=1)
        ins = [x, ctx.input(node, 1)] + ([bias] if bias else [])
        ctx.emit("Gemm", ins, ctx.out(node), transB=1)
        return
    wt = ctx.const(f"{node.name}_weight_t", w.T.copy())
    if bias is None:
        ctx.emit("MatMul", [x, wt], ctx.out(node))
        return
    y = ctx.emit("MatMul", [x, wt], hint=f"{node.name}/matmul")
    ctx.emit("Add", [y, bias], ctx.out(node))
