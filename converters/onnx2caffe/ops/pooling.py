"""MaxPool / AveragePool -> Pooling with exactly ONNX's windows; Global*Pool -> global_pooling.

Caffe has one symmetric pad per axis and its own divisor rule for AVE. For every window ONNX
computes, the matcher (see _geometry) looks for a Caffe pad giving the same window, and for AVE
the same divisor; leading and trailing windows only Caffe computes are cropped with a Slice.
When the windows match but some AVE divisors cannot (``count_include_pad=0`` with pads, where
Caffe always counts the padding), a Scale layer with one factor per output position
(Caffe divisor / ONNX divisor) follows: exact up to one float rounding.
Caffe's rounding is always left at its default, CEIL: FLOOR is never needed (CEIL computes every
window FLOOR does, plus at most one more, which the crop removes, and the divisor rule does not
depend on the rounding), and its two spellings (BVLC ``round_mode``, the fork's ``ceil_mode``)
would each break the other family of runtimes. If no pad reproduces every window and divisor,
the node is refused: a "close" pooling would be silently wrong at the borders.
"""

from __future__ import annotations

import math

import numpy as np

from converters.onnx2caffe.ops._geometry import (
    match_pool_axis,
    onnx_pads,
    onnx_pool_count,
    set_pair,
    window_ints,
)
from converters.onnx2caffe.ops._pieces import crop
from converters.onnx2caffe.registry import register

MAX, AVE = 0, 1  # PoolingParameter.PoolMethod


@register("GlobalMaxPool", "GlobalAveragePool")
def global_pool(node, ctx):
    """Global pooling over H x W."""
    shape = ctx.in_shape(node)
    if len(shape) != 4:
        raise node.error(f"Caffe pooling is 2-D; input has rank {len(shape)}")
    layer = ctx.add_layer("Pooling", [ctx.bottom(node)], [node.outputs[0]])
    layer.pooling_param.pool = MAX if node.op == "GlobalMaxPool" else AVE
    layer.pooling_param.global_pooling = True


@register("MaxPool", "AveragePool")
def pool(node, ctx):
    """2-D pooling; Caffe pad and rounding chosen so that every window and divisor match."""
    is_max = node.op == "MaxPool"
    if is_max and len(node.outputs) > 1 and node.outputs[1] and ctx.consumers.get(node.outputs[1]):
        raise node.error("the Indices output has no Caffe equivalent")
    source, pad_begin, pad_end, pad_value = ctx.unpad(node)
    shape = ctx.shape(node, source)
    if len(shape) != 4:
        raise node.error(f"Caffe pooling is 2-D; input has rank {len(shape)}")
    k = window_ints(node, "kernel_shape", node.attr("kernel_shape", []), 1)
    s = window_ints(node, "strides", node.attr("strides", [1, 1]), 1)
    if any(d != 1 for d in node.attr("dilations", [1, 1])):
        raise node.error("dilated pooling has no Caffe equivalent")
    if is_max and pad_value != -math.inf and any(pad_begin + pad_end):
        raise node.error(f"a merged Pad with value {pad_value} changes a max (Caffe pads ignore)")
    if not is_max and pad_value != 0:
        raise node.error(f"a merged Pad with value {pad_value} (Caffe AVE pads are zeros)")
    size = shape[2:]
    padded = [size[a] + pad_begin[a] + pad_end[a] for a in range(2)]
    pb, pe = onnx_pads(node, padded, k, s)
    ceil = bool(node.attr("ceil_mode", 0))
    counts = [onnx_pool_count(padded[a], k[a], s[a], pb[a], pe[a], ceil) for a in range(2)]
    out_shape = ctx.out_shape(node)
    if list(out_shape[2:]) != counts:
        raise node.error(
            f"onnxruntime computes a {counts[0]}x{counts[1]} output, ONNX shape inference "
            f"says {out_shape[2]}x{out_shape[3]}; the model is ambiguous"
        )
    divisors = [None, None]
    if not is_max:
        include = bool(node.attr("count_include_pad", 0))
        # The interval each window is clipped to for its divisor (original input coordinates).
        divisors = [(-pad_begin[a] - (pb[a] if include else 0),
                     size[a] + pad_end[a] + (pe[a] if include else 0)) for a in range(2)]  # fmt: skip
    begin = [pad_begin[a] + pb[a] for a in range(2)]
    fits = [match_pool_axis(size[a], k[a], s[a], begin[a], counts[a], divisors[a])
            for a in range(2)]  # fmt: skip
    if not is_max and not all(fits):
        fits = [match_pool_axis(size[a], k[a], s[a], begin[a], counts[a], divisors[a],
                                exact=False) for a in range(2)]  # fmt: skip
    if not all(fits):
        raise node.error(
            f"Caffe cannot express this pooling: kernel {k}, strides {s}, pads "
            f"{[*begin, *(pad_end[a] + pe[a] for a in range(2))]} on a {size[0]}x{size[1]} "
            f"input: {_why_not(size, k, s, begin, counts)}"
        )
    out = node.outputs[0]
    full = (*out_shape[:2], *(n_c for _, _, n_c, _ in fits))
    cropped = list(full) != list(out_shape) or any(f for _, f, _, _ in fits)
    ratio = np.outer(*(r for _, _, _, r in fits))
    rescaled = bool(np.any(ratio != 1.0))
    top = ctx.fresh(f"{out}/uncropped") if cropped or rescaled else out
    layer = ctx.add_layer("Pooling", [ctx.blob(node, source)], [top])
    param = layer.pooling_param
    param.pool = MAX if is_max else AVE
    set_pair(param, "kernel_size", k)
    set_pair(param, "stride", s, default=1)
    set_pair(param, "pad", [p for p, _, _, _ in fits], default=0)
    if cropped:
        target = ctx.fresh(f"{out}/cropped") if rescaled else out
        top = crop(ctx, top, full, [0, 0, *(f for _, f, _, _ in fits)], list(out_shape), target)
    if rescaled:
        # Caffe divided each window by its own divisor; rescale to ONNX's (per output position).
        scale = ctx.add_layer("Scale", [top], [out], [ratio.astype(np.float32)])
        scale.scale_param.axis, scale.scale_param.num_axes = 2, 2


def _why_not(size, k, s, begin, counts) -> str:
    for a in range(2):
        for j in range(counts[a]):
            start = j * s[a] - begin[a]
            if start >= size[a] or start + k[a] <= 0:
                return (f"output {j} on axis {2 + a} pools only padding (no input value; "
                        f"Caffe clips such a window differently)")  # fmt: skip
    return "it needs a pad >= the kernel size, which Caffe forbids"
