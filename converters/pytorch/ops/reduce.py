"""ReduceSum / ReduceSumSquare / ReduceMean over static axes (SSD's Normalize: a sum of squares)."""

from __future__ import annotations

from converters.pytorch.registry import register

_AXES_INPUT = {"ReduceSum": 13}  # opset from which axes is input 1 (18 for the others)


@register(
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceMean",
    notes="sum / sum of squares / mean over constant axes; keepdims; empty axes: all "
    "(noop_with_empty_axes: identity)",
)
def reduce(node, ctx):
    rank = len(ctx.shape(node.input[0]))
    if ctx.opset >= _AXES_INPUT.get(node.op_type, 18):
        axes = (
            [int(a) for a in ctx.const(node, 1, "axes").reshape(-1)]
            if ctx.has_input(node, 1)
            else []
        )
    else:
        axes = [int(a) for a in ctx.attr(node, "axes", [])]
    x = ctx.var(node, 0)
    if not axes and ctx.attr(node, "noop_with_empty_axes", 0):
        ctx.alias(node)
        return
    dims = tuple(sorted(a + rank if a < 0 else a for a in axes)) or tuple(range(rank))
    keep = bool(ctx.attr(node, "keepdims", 1))
    if node.op_type == "ReduceSumSquare":
        x = f"({x} * {x})"
    fn = "torch.mean" if node.op_type == "ReduceMean" else "torch.sum"
    ctx.assign(node, f"{fn}({x}, dim={dims!r}, keepdim={keep})")
