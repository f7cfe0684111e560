"""MVN: mean (and variance) normalization (BVLC ``mvn_layer.cpp``).

Caffe views the blob as ``num`` rows of ``dim`` values (``num = N`` with ``across_channels``,
else ``N * C``) and computes, per row::

    m = mean(x);  d = x - m
    y = d / (sqrt(mean(d^2)) + eps)        # normalize_variance (default); else y = d

Note ``eps`` (default 1e-9) is added to the standard deviation, not to the variance; OpenCV
(and ONNX's MeanVarianceNormalization, which has no eps at all) differ, so this is decomposed.
"""

from __future__ import annotations

import numpy as np

from converters.caffe.layers.activation import check_one_to_one, finite
from converters.caffe.registry import register


@register("MVN")
def mvn(layer, ctx):
    """Decomposed (x - mean) / (std + eps) per sample (and per channel unless across_channels)."""
    check_one_to_one(layer)
    p = layer.param("mvn_param")
    eps = finite(layer, "mvn_param.eps", p.eps)
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if not 2 <= len(shape) <= 4:
        raise layer.error(f"input must be 2-D to 4-D (Caffe's num/channels/height/width), "
                          f"got shape {list(shape)}")  # fmt: skip
    name = layer.name
    if len(shape) < 4:
        # Caffe reshapes the top with num/channels/height/width: it is always 4-D.
        shape = (*shape, *(1,) * (4 - len(shape)))
        x = ctx.reshape(x, shape, hint=f"{name}/as4d")
    axes = [1, 2, 3] if p.across_channels else [2, 3]
    mean = ctx.reduce("ReduceMean", x, axes, hint=f"{name}/mean")
    centred = ctx.node("Sub", [x, mean], None if p.normalize_variance else ctx.top_name(layer),
                       hint=f"{name}/centred")  # fmt: skip
    y = centred
    if p.normalize_variance:
        sq = ctx.node("Mul", [centred, centred], hint=f"{name}/square")
        var = ctx.reduce("ReduceMean", sq, axes, hint=f"{name}/var")
        std = ctx.node("Sqrt", [var], hint=f"{name}/std")
        denom = ctx.node("Add", [std, ctx.const(f"{name}/eps", np.float32(eps))],
                         hint=f"{name}/std_eps")  # fmt: skip
        y = ctx.node("Div", [centred, denom], ctx.top_name(layer))
    ctx.set_top(layer, 0, y, shape)
