"""LRN, both norm regions (BVLC ``lrn_layer.cpp``). ``local_size`` n must be odd; p = (n-1)/2.

ACROSS_CHANNELS: ``y = x * (k + alpha/n * sum_{c-p..c+p} x^2) ^ -beta`` with zero padding over
channels. ONNX LRN is the same formula (it also divides alpha by size, and for odd sizes its
window is the same centred one) with ``bias = k``.

WITHIN_CHANNEL: Caffe builds it from sub-layers: Power(x, 2) -> Pooling AVE (kernel n, pad p,
stride 1) -> Power(shift 1, scale alpha, power -beta) -> Eltwise PROD with x. So

    y = x * (1 + alpha * avgpool_nxn(x^2)) ^ -beta          (k is NOT used here)

With stride 1 and pad p = (n-1)/2 no window overhangs the padded image, so Caffe's AVE divisor
is always n*n (Caffe's clipping to H + p never bites): ``AveragePool(count_include_pad=1)``.
"""

from __future__ import annotations

import numpy as np

from converters.caffe.layers.activation import check_one_to_one, finite
from converters.caffe.registry import register

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1


@register("LRN")
def lrn(layer, ctx):
    """ACROSS_CHANNELS as ONNX LRN (bias = k); WITHIN_CHANNEL decomposed over AveragePool."""
    check_one_to_one(layer)
    p = layer.param("lrn_param")
    n = int(p.local_size)
    if n < 1 or n % 2 == 0:
        raise layer.error(f"lrn_param.local_size must be a positive odd number, got {n}")
    alpha = finite(layer, "lrn_param.alpha", p.alpha)
    beta = finite(layer, "lrn_param.beta", p.beta)
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise layer.error(f"input must be 4-D (N, C, H, W), got shape {list(shape)}")
    if p.norm_region == ACROSS_CHANNELS:
        k = finite(layer, "lrn_param.k", p.k)
        y = ctx.node("LRN", [x], ctx.top_name(layer), size=n, alpha=alpha, beta=beta, bias=k)
    elif p.norm_region == WITHIN_CHANNEL:
        pad = (n - 1) // 2
        name = layer.name
        sq = ctx.node("Mul", [x, x], hint=f"{name}/square")
        avg = ctx.node("AveragePool", [sq], hint=f"{name}/pool", kernel_shape=[n, n],
                       strides=[1, 1], pads=[pad, pad, pad, pad], count_include_pad=1)  # fmt: skip
        # Caffe's Power sub-layer: scale, then shift 1, then the power, in float32.
        scaled = ctx.node("Mul", [avg, ctx.const(f"{name}/alpha", np.float32(alpha))],
                          hint=f"{name}/scale")  # fmt: skip
        shifted = ctx.node("Add", [scaled, ctx.const(f"{name}/one", np.float32(1))],
                           hint=f"{name}/shift")  # fmt: skip
        factor = ctx.node("Pow", [shifted, ctx.const(f"{name}/neg_beta", np.float32(-beta))],
                          hint=f"{name}/power")  # fmt: skip
        y = ctx.node("Mul", [x, factor], ctx.top_name(layer))
    else:
        raise layer.error(f"unknown lrn_param.norm_region {p.norm_region}")
    ctx.set_top(layer, 0, y, shape)
