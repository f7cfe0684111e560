"""Conv (2-D) -> nn.Conv2d; asymmetric pads become an explicit zero F.pad before it."""

from __future__ import annotations

from converters.pytorch.registry import register


def split_pads(ctx, node, rank: int):
    """ONNX pads [b1, b2, e1, e2] -> (symmetric padding or None, F.pad list)."""
    pads = list(ctx.attr(node, "pads", [0] * (2 * rank)))
    if ctx.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ctx.refuse(node, "auto_pad other than NOTSET is not supported (give explicit pads)")
    begin, end = pads[:rank], pads[rank:]
    if begin == end:
        return tuple(begin), None
    # F.pad lists the last axis first: (left, right, top, bottom).
    fpad = []
    for b, e in zip(reversed(begin), reversed(end), strict=True):
        fpad += [b, e]
    return (0,) * rank, fpad


@register("Conv", notes="2-D convolution as nn.Conv2d (groups, dilations, strides, pads)")
def conv(node, ctx):
    """2-D convolution as nn.Conv2d."""
    weight = ctx.const(node, 1, "weight")
    if weight.ndim != 4:
        raise ctx.refuse(node, f"only 2-D convolution is supported, weight has rank {weight.ndim}")
    out_c, in_per_group, kh, kw = weight.shape
    group = ctx.attr(node, "group", 1)
    padding, fpad = split_pads(ctx, node, 2)
    strides = tuple(ctx.attr(node, "strides", [1, 1]))
    dilations = tuple(ctx.attr(node, "dilations", [1, 1]))
    params = {"weight": weight}
    bias = ctx.has_input(node, 2)
    if bias:
        params["bias"] = ctx.const(node, 2, "bias")
    layer = ctx.add_module(
        node,
        f"nn.Conv2d({in_per_group * group}, {out_c}, kernel_size={(kh, kw)}, stride={strides}, "
        f"padding={padding}, dilation={dilations}, groups={group}, bias={bias})",
        params,
    )
    x = ctx.var(node, 0)
    if fpad:
        x = f"F.pad({x}, {fpad})"
    ctx.assign(node, f"{layer}({x})")
