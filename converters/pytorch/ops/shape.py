"""Reshape / Flatten / Squeeze / Unsqueeze (to the static output shape), Transpose, Concat, Identity."""

from __future__ import annotations

import math

from converters.pytorch.registry import register


def _target(node, ctx, shape):
    """ONNX Reshape's target: 0 copies the input dim (unless allowzero), -1 is inferred."""
    src = ctx.shape(node.input[0])
    allowzero = ctx.attr(node, "allowzero", 0)
    out = [int(d) for d in shape]
    for i, d in enumerate(out):
        if d == 0 and not allowzero:
            if i >= len(src):
                raise ctx.refuse(node, f"shape {out}: 0 at axis {i} beyond the input's rank")
            out[i] = src[i]
    if out.count(-1) > 1:
        raise ctx.refuse(node, f"shape {out} has more than one -1")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(src) // known if known else 0
    if math.prod(out) != math.prod(src):
        raise ctx.refuse(node, f"cannot reshape {list(src)} to {out}")
    return tuple(out)


@register("Reshape", notes="tensor.reshape to the resolved static shape (0 and -1 resolved)")
def reshape(node, ctx):
    """Reshape with a constant (or folded) shape."""
    target = _target(node, ctx, ctx.const(node, 1, "shape"))
    ctx.assign(node, f"{ctx.var(node, 0)}.reshape({target})")


@register("Flatten", notes="2-D reshape at axis")
def flatten(node, ctx):
    """[prod(dims[:axis]), prod(dims[axis:])]."""
    src = ctx.shape(node.input[0])
    axis = int(ctx.attr(node, "axis", 1))
    axis = axis + len(src) if axis < 0 else axis
    target = (math.prod(src[:axis]), math.prod(src[axis:]))
    ctx.assign(node, f"{ctx.var(node, 0)}.reshape({target})")


@register("Squeeze", "Unsqueeze", notes="tensor.reshape to the inferred static shape")
def squeeze(node, ctx):
    """Axis insertion/removal is a reshape to the output's static shape."""
    ctx.assign(node, f"{ctx.var(node, 0)}.reshape({ctx.shape(node.output[0])})")


@register("Transpose", notes="tensor.permute(perm) (default: reversed axes)")
def transpose(node, ctx):
    """Permute the axes."""
    rank = len(ctx.shape(node.input[0]))
    perm = tuple(ctx.attr(node, "perm", list(reversed(range(rank)))))
    ctx.assign(node, f"{ctx.var(node, 0)}.permute({perm})")


@register("Concat", notes="torch.cat along axis")
def concat(node, ctx):
    """torch.cat of the inputs (constants as buffers)."""
    axis = int(ctx.attr(node, "axis"))
    parts = ", ".join(ctx.var(node, i) for i in range(len(node.input)) if node.input[i])
    ctx.assign(node, f"torch.cat([{parts}], dim={axis})")


@register("Identity", "Dropout", notes="pass-through (Dropout at inference)")
def identity(node, ctx):
    """The output is the input (Dropout's mask output is refused)."""
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise ctx.refuse(node, "the mask output is not supported")
    ctx.alias(node)
