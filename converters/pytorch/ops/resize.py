"""Resize / Upsample -> F.interpolate, only for the modes torch computes identically.

- nearest + asymmetric + floor (integer or fractional scale): torch 'nearest' (src = floor(dst / scale)).
- linear + half_pixel (or pytorch_half_pixel with outputs > 1): 'bilinear', align_corners=False.
- linear + align_corners: 'bilinear', align_corners=True.
Everything else (cubic, other nearest modes, antialias, tf_crop_and_resize) is refused.
"""

from __future__ import annotations

from converters.pytorch.registry import register


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


@register(
    "Resize",
    "Upsample",
    notes="F.interpolate (nearest asymmetric/floor, bilinear half_pixel/align_corners)",
)
def resize(node, ctx):
    """F.interpolate to the static output size."""
    src = ctx.shape(node.input[0])
    out = ctx.shape(node.output[0])
    if len(src) != 4 or src[:2] != out[:2]:
        raise ctx.refuse(
            node,
            f"only spatial resizing of rank-4 tensors is supported ({list(src)} -> {list(out)})",
        )
    mode = _s(ctx.attr(node, "mode", "nearest"))
    ctm = _s(
        ctx.attr(
            node,
            "coordinate_transformation_mode",
            "half_pixel" if node.op_type == "Resize" else "asymmetric",
        )
    )
    if node.op_type == "Upsample":
        ctm = "asymmetric"
    if ctx.attr(node, "antialias", 0) or ctx.attr(node, "exclude_outside", 0):
        raise ctx.refuse(node, "antialias/exclude_outside are not supported")
    size = tuple(out[2:])
    x = ctx.var(node, 0)
    if mode == "nearest":
        nm = _s(ctx.attr(node, "nearest_mode", "round_prefer_floor"))
        if ctm != "asymmetric" or (node.op_type == "Resize" and nm != "floor"):
            raise ctx.refuse(node, f"nearest with {ctm}/{nm}: only asymmetric/floor matches torch")
        if any(o % i for o, i in zip(out[2:], src[2:], strict=True)):
            raise ctx.refuse(node, "nearest needs integer scales to match torch's index rule")
        ctx.assign(node, f"F.interpolate({x}, size={size}, mode='nearest')")
    elif mode in ("linear", "bilinear"):
        if ctm == "align_corners":
            align = True
        elif ctm == "half_pixel" or (ctm == "pytorch_half_pixel" and min(size) > 1):
            align = False
        else:
            raise ctx.refuse(
                node, f"linear with coordinate_transformation_mode {ctm!r} is not supported"
            )
        ctx.assign(node, f"F.interpolate({x}, size={size}, mode='bilinear', align_corners={align})")
    else:
        raise ctx.refuse(node, f"mode {mode!r} is not supported")
