"""BatchNormalization -> BatchNorm + Scale; LRN -> LRN (across channels).

Caffe's BatchNorm has no affine part (``y = (x - mean) / sqrt(var + eps)``, blobs
``[mean * f, var * f, f]`` with ``f = 1`` here); the following Scale applies gamma and beta.
ONNX LRN divides ``alpha`` by ``size`` like Caffe's ACROSS_CHANNELS, with ``bias`` as Caffe's
``k``; Caffe needs an odd ``local_size`` (ONNX centres even windows asymmetrically).
OpenCV's Caffe importer ignores ``k`` (it reads a ``bias`` field Caffe does not have), so a
``bias`` other than 1 is factored out, exactly:
``x / (k + a/n S)^b = k^-b * x / (1 + (a/k)/n S)^b``: an LRN with ``k = 1`` and a Power scale.
"""

from __future__ import annotations

import numpy as np

from converters.onnx2caffe.registry import register


@register("BatchNormalization")
def batch_norm(node, ctx):
    """Inference batch norm: BatchNorm (statistics) + Scale (gamma, beta)."""
    if node.attr("training_mode", 0) or any(o for o in node.outputs[1:]
                                             if ctx.consumers.get(o)):  # fmt: skip
        raise node.error("training mode (batch statistics) has no inference Caffe layer")
    if len(ctx.in_shape(node)) < 2:
        raise node.error("input must have a channel axis")
    gamma = ctx.const(node, 1, "scale")
    beta = ctx.const(node, 2, "B")
    mean = ctx.const(node, 3, "the mean")
    var = ctx.const(node, 4, "the variance")
    out = node.outputs[0]
    normed = ctx.fresh(f"{out}/bn")
    bn = ctx.add_layer("BatchNorm", [ctx.bottom(node)], [normed],
                       [mean, var, np.ones(1, dtype=np.float32)])  # fmt: skip
    bn.batch_norm_param.use_global_stats = True
    bn.batch_norm_param.eps = float(node.attr("epsilon", 1e-5))
    scale = ctx.add_layer("Scale", [normed], [out], [gamma, beta])
    scale.scale_param.bias_term = True


@register("LRN")
def lrn(node, ctx):
    """Local response normalization across channels."""
    size = int(node.attr("size"))
    if size % 2 == 0:
        raise node.error(f"size {size} is even; Caffe LRN needs an odd local_size")
    alpha, beta = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75))
    bias = float(node.attr("bias", 1.0))
    if bias <= 0:
        raise node.error(f"bias {bias} must be positive")
    out = node.outputs[0]
    top = out if bias == 1.0 else ctx.fresh(f"{out}/lrn")
    param = ctx.add_layer("LRN", [ctx.bottom(node)], [top]).lrn_param
    param.local_size, param.alpha, param.beta = size, alpha / bias, beta
    if bias != 1.0:
        ctx.add_layer("Power", [top], [out]).power_param.scale = bias**-beta
