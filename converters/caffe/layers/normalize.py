"""Normalize (SSD fork, ``norm_param``; weiliu89/caffe ``normalize_layer.cpp``).

Per sample, with ``eps`` (default 1e-10) added to the sum of squares *before* the root::

    across_spatial (default):  norm = sqrt(sum_{c,h,w} x^2 + eps)      one value per sample
    otherwise:                 norm[h,w] = sqrt(sum_c x^2 + eps)       one value per pixel
    y = x / norm * scale        scale: blob 0, one value (channel_shared, default) or (C)

ONNX LpNormalization has neither the eps nor the across-spatial mode, so it is decomposed.
The scale blob is the trained weight; a missing blob is an error (the filler is not a weight).
"""

from __future__ import annotations

import numpy as np

from converters.caffe.layers.activation import check_one_to_one, finite
from converters.caffe.registry import register


@register("Normalize")
def normalize(layer, ctx):
    """x / sqrt(sum x^2 + eps) * scale, over C,H,W (across_spatial) or over C per pixel."""
    check_one_to_one(layer)
    p = layer.param("norm_param")
    eps = finite(layer, "norm_param.eps", p.eps)
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if len(shape) < 2:
        raise layer.error(f"input must have at least 2 axes (N, C, ...), got shape {list(shape)}")
    if p.channel_shared:
        scale = layer.blob(0, (1,), "scale, channel_shared")
    else:
        # (C, 1, ..., 1) so that it broadcasts over channels, not over the last axis.
        scale = layer.blob(0, (shape[1],) + (1,) * (len(shape) - 2), "scale, one per channel")
    name = layer.name
    axes = list(range(1, len(shape))) if p.across_spatial else [1]
    sumsq = ctx.reduce("ReduceSumSquare", x, axes, hint=f"{name}/sumsq")
    padded = ctx.node("Add", [sumsq, ctx.const(f"{name}/eps", np.float32(eps))],
                      hint=f"{name}/sumsq_eps")  # fmt: skip
    norm = ctx.node("Sqrt", [padded], hint=f"{name}/norm")
    unit = ctx.node("Div", [x, norm], hint=f"{name}/unit")
    scale_name = ctx.const(f"{name}/scale", scale)
    y = ctx.node("Mul", [unit, scale_name], ctx.top_name(layer))
    # for the ONNX -> Caffe writer: the weight and its shape in the caffemodel
    ctx.layer_blobs[layer.index] = ([scale_name], [layer.blob_shape(0)])
    ctx.set_top(layer, 0, y, shape)
