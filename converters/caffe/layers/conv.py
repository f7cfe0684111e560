"""Convolution, ConvolutionDepthwise / DepthwiseConvolution (forks) and Deconvolution.

The two depthwise spellings (``ConvolutionDepthwise``: the MobileNet Caffe ports;
``DepthwiseConvolution``: MobileNet-YOLO and others) are the same layer: a convolution with
``group`` = input channels whatever ``group`` says.

Caffe: ``out = floor((in + 2p - (d(k-1)+1)) / s) + 1`` for Convolution and
``out = s(in-1) + d(k-1) + 1 - 2p`` for Deconvolution; weights are ``(O, I/g, kh, kw)`` for
Convolution and ``(I, O/g, kh, kw)`` for Deconvolution, exactly ONNX's Conv/ConvTranspose layouts.
"""

from __future__ import annotations

from converters.caffe.layers._geometry import spatial_pair
from converters.caffe.registry import register


def _geometry(layer, p):
    kh, kw = spatial_pair(layer, p, "kernel_size", 0, "kernel_h", "kernel_w")
    if kh <= 0 or kw <= 0:
        raise layer.error(f"kernel size must be positive, got {kh}x{kw}")
    sh, sw = spatial_pair(layer, p, "stride", 1, "stride_h", "stride_w", minimum=1)
    ph, pw = spatial_pair(layer, p, "pad", 0, "pad_h", "pad_w")
    dh, dw = spatial_pair(layer, p, "dilation", 1, "", "", minimum=1)
    if p.axis != 1:
        raise layer.error(f"convolution_param.axis must be 1 (channels), got {p.axis}")
    return (kh, kw), (sh, sw), (ph, pw), (dh, dw)


def _emit(layer, ctx, op: str, group: int, w_shape, out_shape, k, s, pads, d, p):
    x = ctx.input(layer)
    w = ctx.const(f"{layer.name}/W", layer.stored_blob(0, w_shape, "weights"))
    inputs = [x, w]
    if p.bias_term:
        inputs.append(ctx.const(f"{layer.name}/B", layer.blob(1, (p.num_output,), "bias")))
    out = ctx.node(
        op,
        inputs,
        ctx.top_name(layer),
        kernel_shape=list(k),
        strides=list(s),
        pads=[pads[0], pads[1], pads[0], pads[1]],
        dilations=list(d),
        group=group,
    )
    ctx.set_top(layer, 0, out, out_shape)


_DEPTHWISE = frozenset({"ConvolutionDepthwise", "DepthwiseConvolution"})


@register("Convolution", *sorted(_DEPTHWISE))
def convolution(layer, ctx):
    """Conv with group, dilation and separate h/w kernel, stride and pad."""
    p = layer.param("convolution_param")
    n, c, h, w = ctx.in_shape4(layer)
    k, s, pads, d = _geometry(layer, p)
    group = c if layer.type in _DEPTHWISE else p.group
    if group < 1:
        raise layer.error(f"group must be at least 1, got {group}")
    if c % group or p.num_output % group:
        raise layer.error(
            f"group {group} must divide input channels {c} and num_output {p.num_output}"
        )
    oh = (h + 2 * pads[0] - (d[0] * (k[0] - 1) + 1)) // s[0] + 1
    ow = (w + 2 * pads[1] - (d[1] * (k[1] - 1) + 1)) // s[1] + 1
    w_shape = (p.num_output, c // group, *k)
    _emit(layer, ctx, "Conv", group, w_shape, (n, p.num_output, oh, ow), k, s, pads, d, p)


@register("Deconvolution")
def deconvolution(layer, ctx):
    """ConvTranspose; weights (C_in, C_out/group, kh, kw)."""
    p = layer.param("convolution_param")
    n, c, h, w = ctx.in_shape4(layer)
    k, s, pads, d = _geometry(layer, p)
    group = p.group
    if group < 1:
        raise layer.error(f"group must be at least 1, got {group}")
    if c % group or p.num_output % group:
        raise layer.error(
            f"group {group} must divide input channels {c} and num_output {p.num_output}"
        )
    oh = s[0] * (h - 1) + d[0] * (k[0] - 1) + 1 - 2 * pads[0]
    ow = s[1] * (w - 1) + d[1] * (k[1] - 1) + 1 - 2 * pads[1]
    w_shape = (c, p.num_output // group, *k)
    _emit(layer, ctx, "ConvTranspose", group, w_shape, (n, p.num_output, oh, ow), k, s, pads, d, p)
