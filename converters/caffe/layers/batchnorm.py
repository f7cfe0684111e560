"""BatchNorm with stored global statistics, emitted as ONNX BatchNormalization.

BVLC Caffe's blobs are ``[mean * s, var * s, s]`` (``s`` the moving-average normalisation
factor, one value): the statistics are multiplied by ``1/s`` in float32 as Caffe does (``s == 0``
gives 0), then ``y = (x - mean) / sqrt(var + eps)`` with ``eps`` default 1e-5. There is no
affine part (a following Scale layer supplies it), so scale = 1 and bias = 0.

NVIDIA Caffe's ``scale_bias: true`` adds blobs 3 and 4 (per-channel scale and bias) and, in that
fork, blobs 0 and 1 are the plain mean and variance (blob 2 is never applied) and ``eps`` is
raised to at least 1e-5 (``BatchNormLayer::LayerSetUp`` / ``Forward_cpu`` there; OpenCV agrees).

Why BatchNormalization rather than Sub/Mul: it is one node carrying mean/var/eps as constants,
which is exactly what the optimizer's BatchNormalization(+Mul/Add) -> Conv fold matches; the
following Scale stays a separate Mul/Add with constants for the same fold.

``use_global_stats: false`` at deploy means normalising by the batch's own statistics; no
converted model should depend on the batch it runs in, so that is refused.
"""

from __future__ import annotations

import numpy as np

from converters.caffe.registry import register


@register("BatchNorm")
def batch_norm(layer, ctx):
    """BatchNormalization from Caffe's (mean*s, var*s, s) blobs, eps default 1e-5."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("batch_norm_param")
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise layer.error(
            "use_global_stats: false normalises with each batch's own statistics, which a "
            "deployed model cannot reproduce; set use_global_stats: true (or remove it)"
        )
    if len(shape) < 2:
        raise layer.error(f"needs a bottom with a channel axis (N, C, ...), got {list(shape)}")
    c = shape[1]
    mean, var = layer.blob(0, (c,), "mean"), layer.blob(1, (c,), "variance")
    expected = 5 if p.scale_bias else 3
    if layer.num_blobs != expected:
        raise layer.error(
            f"expected {expected} weight blobs (mean*s, var*s, s"
            f"{', scale, bias' if p.scale_bias else ''}), the caffemodel has {layer.num_blobs}"
        )
    s = layer.blob(2, (1,), "moving-average factor")[0]
    eps = float(p.eps)
    if p.scale_bias:
        gamma, beta = layer.blob(3, (c,), "scale"), layer.blob(4, (c,), "bias")
        eps = max(eps, float(np.float32(1e-5)))
    else:
        factor = np.float32(0.0) if s == 0 else np.float32(1.0) / s
        mean, var = mean * factor, var * factor
        gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    n = layer.name
    ins = [x, ctx.const(f"{n}/scale", gamma), ctx.const(f"{n}/bias", beta),
           ctx.const(f"{n}/mean", mean), ctx.const(f"{n}/var", var)]  # fmt: skip
    y = ctx.node("BatchNormalization", ins, ctx.top_name(layer), epsilon=eps)
    ctx.set_top(layer, 0, y, shape)


@register("BN")
def segnet_bn(layer, ctx):
    """SegNet/ENet BN (bn_param): y = x * scale + shift, per-channel blobs (1, C, 1, 1)."""
    p = layer.param("bn_param")
    if p.bn_mode != p.INFERENCE:
        # LEARN (the default) normalises by the batch's own statistics, like
        # use_global_stats: false above; SegNet's and ENet's compute_bn_statistics.py
        # writes the inference model, with the statistics folded into scale and shift.
        raise layer.error(
            "bn_param.bn_mode is LEARN (the default), which normalises with each batch's "
            "own statistics; use the inference model (bn_mode: INFERENCE) that "
            "compute_bn_statistics.py writes"
        )
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise layer.error(f"needs a 4-D bottom (N, C, H, W), got {list(shape)}")
    c = shape[1]
    scale = layer.blob(0, (c, 1, 1), "scale")
    shift = layer.blob(1, (c, 1, 1), "shift")
    scaled = ctx.node("Mul", [x, ctx.const(f"{layer.name}/scale", scale)],
                      hint=f"{layer.name}/mul")  # fmt: skip
    y = ctx.node("Add", [scaled, ctx.const(f"{layer.name}/shift", shift)], ctx.top_name(layer))
    ctx.set_top(layer, 0, y, shape)
