"""Resize / Upsample: nearest by an integer factor -> Deconvolution, bilinear align_corners -> Interp.

Nearest-neighbour upsampling by integer factors ``(fh, fw)`` copies input pixel ``i // f`` to
output ``i``: a depthwise Deconvolution with an all-ones ``fh x fw`` kernel and stride ``f``
does exactly that, in every Caffe. Whether an ONNX node really maps ``i -> i // f`` depends on
its coordinate transformation and rounding mode; the mapping is computed from the ONNX formulas
and compared, index by index. Bilinear with ``align_corners`` is the DeepLab/PSPNet fork's
``Interp`` layer (OpenCV reads it); other bilinear variants have no Caffe layer.
"""

from __future__ import annotations

import math

import numpy as np

from converters.onnx2caffe.registry import register


def _scales(node, ctx, in_shape, out_shape) -> list[float]:
    if node.op == "Upsample":
        s = node.attr("scales") if node.opset < 9 else ctx.const(node, 1, "scales").tolist()
        return [float(v) for v in s]
    if node.opset < 11:
        return [float(v) for v in ctx.const(node, 1, "scales")]
    scales = ctx.optional_const(node, 2, "scales")
    if scales is not None and scales.size:
        return [float(v) for v in scales]
    return [o / i for i, o in zip(in_shape, out_shape, strict=True)]


def _source_index(n_in, n_out, scale, coord, nearest) -> list[int]:
    """ONNX's nearest source index for every output position (Resize spec formulas)."""
    result = []
    for i in range(n_out):
        if coord == "align_corners":
            x = 0.0 if n_out == 1 else i * (n_in - 1) / (n_out - 1)
        elif coord == "asymmetric":
            x = i / scale
        elif coord == "tf_half_pixel_for_nn":
            x = (i + 0.5) / scale
        elif coord == "pytorch_half_pixel" and n_out == 1:
            x = 0.0
        else:  # half_pixel, pytorch_half_pixel
            x = (i + 0.5) / scale - 0.5
        if nearest == "floor":
            j = math.floor(x)
        elif nearest == "ceil":
            j = math.ceil(x)
        elif nearest == "round_prefer_ceil":
            j = math.floor(x + 0.5)
        else:  # round_prefer_floor
            j = math.ceil(x - 0.5)
        result.append(min(max(j, 0), n_in - 1))
    return result


@register("Resize", "Upsample")
def resize(node, ctx):
    """Nearest x integer factor (Deconvolution) or bilinear align_corners (Interp)."""
    in_shape, out_shape = ctx.in_shape(node), ctx.out_shape(node)
    if len(in_shape) != 4 or tuple(in_shape[:2]) != tuple(out_shape[:2]):
        raise node.error("only resizing H and W of an NCHW tensor maps to Caffe")
    mode = node.attr("mode", "nearest")
    legacy = node.op == "Upsample" or node.opset < 11
    coord = "asymmetric" if legacy else node.attr("coordinate_transformation_mode", "half_pixel")
    x, out = ctx.bottom(node), node.outputs[0]
    if mode in ("linear", "bilinear"):
        if coord != "align_corners":
            raise node.error(f"bilinear with coordinate_transformation_mode '{coord}' has no "
                             f"Caffe layer (only align_corners -> Interp)")  # fmt: skip
        layer = ctx.add_layer("Interp", [x], [out])
        layer.interp_param.height, layer.interp_param.width = (int(d) for d in out_shape[2:])
        return
    if mode != "nearest":
        raise node.error(f"mode '{mode}' has no Caffe layer")
    scales = _scales(node, ctx, in_shape, out_shape)
    nearest = "floor" if legacy else node.attr("nearest_mode", "round_prefer_floor")
    factors = []
    for a in (2, 3):
        f = out_shape[a] // in_shape[a]
        wanted = [i // f for i in range(out_shape[a])] if f * in_shape[a] == out_shape[a] else None
        got = _source_index(in_shape[a], out_shape[a], scales[a], coord, nearest)
        if wanted is None or got != wanted:
            raise node.error(
                f"nearest resize {in_shape[a]} -> {out_shape[a]} on axis {a} ({coord}, "
                f"{nearest}) is not an integer-factor upsampling; Caffe has no such layer"
            )
        factors.append(f)
    if factors == [1, 1]:
        ctx.alias(node, 0, x)
        return
    channels = in_shape[1]
    weight = np.ones((channels, 1, *factors), dtype=np.float32)
    layer = ctx.add_layer("Deconvolution", [x], [out], [weight])
    param = layer.convolution_param
    param.num_output, param.group, param.bias_term = channels, channels, False
    param.kernel_h, param.kernel_w = factors
    param.stride_h, param.stride_w = factors
