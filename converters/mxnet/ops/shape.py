"""Shape ops on static shapes: Reshape/Squeeze/Unsqueeze (explicit target shape), Flatten,
Transpose, Concat, and the identities (Identity, Dropout, float Cast)."""

from __future__ import annotations

from onnx import TensorProto

from converters.mxnet.registry import register


@register("Reshape", "Squeeze", "Unsqueeze")
def reshape(node, ctx):
    """Reshape to the inferred output shape, written out in full (no special codes)."""
    out = ctx.out_shape(node)
    if tuple(out) == tuple(ctx.in_shape(node)):
        ctx.alias(node)
        return
    ctx.out(node, "Reshape", [ctx.sym(node, 0)], {"shape": tuple(out)})


@register("Flatten")
def flatten(node, ctx):
    """Flatten (axis 1), else a Reshape to the 2-D output."""
    rank = len(ctx.in_shape(node))
    axis = int(node.attr("axis", 1))
    if rank and axis % rank == 1:
        ctx.out(node, "Flatten", [ctx.sym(node, 0)])
    else:
        ctx.out(node, "Reshape", [ctx.sym(node, 0)], {"shape": tuple(ctx.out_shape(node))})


@register("Transpose")
def transpose(node, ctx):
    """transpose(axes)."""
    rank = len(ctx.in_shape(node))
    perm = node.attr("perm") or list(reversed(range(rank)))
    ctx.out(node, "transpose", [ctx.sym(node, 0)], {"axes": tuple(int(p) for p in perm)})


@register("Concat")
def concat(node, ctx):
    """Concat(dim, num_args)."""
    rank = len(ctx.out_shape(node))
    ins = [i for i in range(len(node.inputs)) if node.input(i) is not None]
    refs = [ctx.sym(node, i) for i in ins if ctx.in_shape(node, i)[int(node.attr("axis")) % rank]]
    if len(refs) == 1:
        ctx.bind(node, refs[0])
        return
    attrs = {"dim": int(node.attr("axis")) % rank, "num_args": len(refs)}
    ctx.out(node, "Concat", refs, attrs)


@register("Identity", "Dropout")
def identity(node, ctx):
    """The input itself (inference Dropout is the identity)."""
    if node.op == "Dropout" and len(node.outputs) > 1 and node.outputs[1]:
        raise node.error("the mask output is not supported")
    ctx.alias(node)


@register("Cast")
def cast(node, ctx):
    """A cast to float32 of float32 data is the identity; other casts are refused."""
    if int(node.attr("to")) != TensorProto.FLOAT:
        raise node.error(f"cast to ONNX type {node.attr('to')} (float32 graphs only)")
    ctx.alias(node)
