"""MaxPool / AveragePool / GlobalAveragePool / GlobalMaxPool (2-D).

ONNX output size with ceil_mode is ceil((in + pads - k_eff) / s) + 1. Rather than rely on
torch's own ceil rule (which drops a last window starting in the right padding), the extra right
padding that ceil mode implies is made explicit, and pooling runs in floor mode:
- MaxPool pads with -inf (ONNX ignores padding), exact.
- AveragePool with count_include_pad=1 pads with zeros and divides by the full kernel, except
  that ONNX never counts the ceil-mode overflow beyond the declared pads; with
  count_include_pad=0 (or overflow) it is a window sum (divisor_override=1) divided by a
  constant count map computed here per ONNX's rule.
"""

from __future__ import annotations

import math

import numpy as np

from converters.pytorch.ops.conv import split_pads
from converters.pytorch.registry import register


def _geometry(node, ctx):
    shape = ctx.shape(node.input[0])
    if len(shape) != 4:
        raise ctx.refuse(
            node, f"only 2-D pooling (rank-4 input) is supported, got rank {len(shape)}"
        )
    kernel = list(ctx.attr(node, "kernel_shape"))
    strides = list(ctx.attr(node, "strides", [1, 1]))
    dil = list(ctx.attr(node, "dilations", [1, 1]))
    split_pads(ctx, node, 2)  # auto_pad check
    pads = list(ctx.attr(node, "pads", [0, 0, 0, 0]))
    ceil = bool(ctx.attr(node, "ceil_mode", 0))
    extra = []
    for a in range(2):
        size = shape[2 + a] + pads[a] + pads[a + 2]
        k_eff = (kernel[a] - 1) * dil[a] + 1
        rnd = math.ceil if ceil else math.floor
        out = int(rnd((size - k_eff) / strides[a])) + 1
        if (out - 1) * strides[a] - pads[a] >= shape[2 + a]:
            raise ctx.refuse(node, "ceil_mode gives a window lying entirely in the padding")
        extra.append(max(0, (out - 1) * strides[a] + k_eff - size))
    return shape, kernel, strides, dil, pads, extra


def _fpad(pads, extra):
    # F.pad order: (left, right, top, bottom) = W begin/end, H begin/end.
    return [pads[1], pads[3] + extra[1], pads[0], pads[2] + extra[0]]


@register("MaxPool", notes="nn.MaxPool2d; asymmetric pads and ceil_mode as an explicit -inf F.pad")
def max_pool(node, ctx):
    """nn.MaxPool2d (pads/ceil_mode exact via explicit -inf padding)."""
    if len(node.output) > 1 and node.output[1]:
        raise ctx.refuse(node, "the Indices output is not supported")
    if ctx.attr(node, "storage_order", 0):
        raise ctx.refuse(node, "storage_order=1 is not supported")
    _, kernel, strides, dil, pads, extra = _geometry(node, ctx)
    x = ctx.var(node, 0)
    sym = (
        pads[:2] == pads[2:]
        and not any(extra)
        and all(p <= k // 2 for p, k in zip(pads, kernel * 2, strict=False))
    )
    if sym:
        padding = tuple(pads[:2])
    else:
        padding = (0, 0)
        x = f"F.pad({x}, {_fpad(pads, extra)}, value=float('-inf'))"
    layer = ctx.add_module(
        node,
        f"nn.MaxPool2d(kernel_size={tuple(kernel)}, stride={tuple(strides)}, padding={padding}, "
        f"dilation={tuple(dil)})",
        {},
    )
    ctx.assign(node, f"{layer}({x})")


@register(
    "AveragePool", notes="nn.AvgPool2d; asymmetric pads / ceil_mode via a window sum / count map"
)
def average_pool(node, ctx):
    """nn.AvgPool2d, or a window sum divided by ONNX's count map where torch differs."""
    shape, kernel, strides, dil, pads, extra = _geometry(node, ctx)
    if dil != [1, 1]:
        raise ctx.refuse(node, f"dilations {dil} are not supported for AveragePool")
    include = bool(ctx.attr(node, "count_include_pad", 0))
    x = ctx.var(node, 0)
    sym = (
        pads[:2] == pads[2:]
        and not any(extra)
        and all(p <= k // 2 for p, k in zip(pads, kernel * 2, strict=False))
    )
    if sym:
        layer = ctx.add_module(
            node,
            f"nn.AvgPool2d(kernel_size={tuple(kernel)}, stride={tuple(strides)}, "
            f"padding={tuple(pads[:2])}, count_include_pad={include})",
            {},
        )
        ctx.assign(node, f"{layer}({x})")
        return
    counts = _counts(shape, kernel, strides, pads, extra, include)
    layer = ctx.add_module(
        node,
        f"nn.AvgPool2d(kernel_size={tuple(kernel)}, stride={tuple(strides)}, divisor_override=1)",
        {},
    )
    div = ctx.add_buffer(node, counts, f"{node.output[0]}_count")
    ctx.assign(node, f"{layer}(F.pad({x}, {_fpad(pads, extra)})) / {div}")


def _counts(shape, kernel, strides, pads, extra, include):
    """Divisor of each output position: real elements, or elements within the declared pads."""
    per_axis = []
    for a in range(2):
        n = shape[2 + a]
        lo, hi = (-pads[a], n + pads[a + 2]) if include else (0, n)
        out = (n + pads[a] + pads[a + 2] + extra[a] - kernel[a]) // strides[a] + 1
        c = []
        for i in range(out):
            s = i * strides[a] - pads[a]
            c.append(max(0, min(s + kernel[a], hi) - max(s, lo)))
        per_axis.append(np.array(c, dtype=np.float32))
    return np.outer(per_axis[0], per_axis[1]).astype(np.float32)[None, None]


@register("GlobalAveragePool", notes="mean over the spatial axes (keepdim)")
def global_average_pool(node, ctx):
    """Mean over all axes after the channel axis."""
    rank = len(ctx.shape(node.input[0]))
    ctx.assign(node, f"torch.mean({ctx.var(node, 0)}, dim={tuple(range(2, rank))}, keepdim=True)")


@register("GlobalMaxPool", notes="max over the spatial axes (keepdim)")
def global_max_pool(node, ctx):
    """Max over all axes after the channel axis."""
    rank = len(ctx.shape(node.input[0]))
    ctx.assign(node, f"torch.amax({ctx.var(node, 0)}, dim={tuple(range(2, rank))}, keepdim=True)")
