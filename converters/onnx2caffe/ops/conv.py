"""Conv -> Convolution, ConvTranspose -> Deconvolution (2-D, constant weights).

Weights keep their layout: ONNX Conv ``(M, C/g, kh, kw)`` and ConvTranspose ``(C, M/g, kh, kw)``
are exactly Caffe's Convolution and Deconvolution blobs.

Caffe pads are symmetric. Asymmetric ONNX pads (TF-style SAME, a merged ``Pad``) are expressed
by a larger symmetric pad whose extra output rows/columns a Slice crops away (see _geometry);
this is always possible for Conv. For ConvTranspose the Caffe output is the full transposed
convolution minus ``p`` on each side, so the smaller pad is used and the rest cropped.
"""

from __future__ import annotations

import numpy as np

from converters.onnx2caffe.ops._geometry import match_conv_axis, onnx_pads, set_pair, window_ints
from converters.onnx2caffe.ops._pieces import crop
from converters.onnx2caffe.registry import register


def _common(node, ctx, w):
    if w.ndim != 4:
        raise node.error(f"only 2-D convolution maps to Caffe (weight rank {w.ndim})")
    kernel = list(node.attr("kernel_shape", w.shape[2:]))
    if kernel != list(w.shape[2:]):
        raise node.error(f"kernel_shape {kernel} disagrees with the weight shape {list(w.shape)}")
    strides = window_ints(node, "strides", node.attr("strides", [1, 1]), 1)
    dilations = window_ints(node, "dilations", node.attr("dilations", [1, 1]), 1)
    return kernel, strides, dilations


def _group(node, channels: int, per_group: int) -> int:
    """``group``, which must split the input channels into groups of the weight's width (the
    ONNX checker leaves it unchecked; Caffe stores it as uint32)."""
    group = int(node.attr("group", 1))
    if group < 1 or group * per_group != channels:
        raise node.error(
            f"group {group} does not fit the input's {channels} channels and the weight's "
            f"{per_group} channels per group"
        )
    return group


def _fill(param, num_output, bias, kernel, strides, pads, dilations, group):
    param.num_output = int(num_output)
    param.bias_term = bias is not None
    set_pair(param, "kernel_size", kernel)
    set_pair(param, "stride", strides, default=1)
    set_pair(param, "pad", pads, default=0)
    if any(d != 1 for d in dilations):
        param.dilation.extend(int(d) for d in dilations)  # one value per spatial axis
    if group != 1:
        param.group = int(group)


@register("Conv")
def conv(node, ctx):
    """2-D convolution (groups, dilation; asymmetric pads via a larger pad and a crop)."""
    source, pad_begin, pad_end, pad_value = ctx.unpad(node)
    if pad_value != 0:
        raise node.error(f"a merged Pad with value {pad_value} (Caffe pads with zeros)")
    w = ctx.const(node, 1, "the weight")
    b = ctx.optional_const(node, 2, "the bias")
    kernel, strides, dilations = _common(node, ctx, w)
    shape = ctx.shape(node, source)
    group = _group(node, shape[1], w.shape[1])
    padded = [shape[2 + a] + pad_begin[a] + pad_end[a] for a in range(2)]
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True)]
    begin, _ = onnx_pads(node, padded, eff, strides)
    out_shape = ctx.out_shape(node)
    fits = [match_conv_axis(shape[2 + a], eff[a], strides[a], pad_begin[a] + begin[a],
                            out_shape[2 + a]) for a in range(2)]  # fmt: skip
    out = node.outputs[0]
    cropped = any(f or n_c != out_shape[2 + a] for a, (_, f, n_c) in enumerate(fits))
    top = ctx.fresh(f"{out}/uncropped") if cropped else out
    blobs = [w] if b is None else [w, b]
    layer = ctx.add_layer("Convolution", [ctx.blob(node, source)], [top], blobs)
    _fill(layer.convolution_param, w.shape[0], b, kernel, strides, [p for p, _, _ in fits],
          dilations, group)  # fmt: skip
    if cropped:
        full = (*out_shape[:2], *(n_c for _, _, n_c in fits))
        begins = [0, 0, *(f for _, f, _ in fits)]
        crop(ctx, top, full, begins, list(out_shape), out)


@register("ConvTranspose")
def conv_transpose(node, ctx):
    """2-D transposed convolution (Deconvolution); pads Caffe cannot center are cropped."""
    w = ctx.const(node, 1, "the weight")
    b = ctx.optional_const(node, 2, "the bias")
    kernel, strides, dilations = _common(node, ctx, w)
    if node.attr("output_shape") is not None or node.attr("auto_pad", "NOTSET") not in (
        "NOTSET",
        "VALID",
    ):
        raise node.error("output_shape/auto_pad SAME are not supported; give explicit pads")
    if any(d != 1 for d in dilations):
        # Valid Caffe, but OpenCV's Deconvolution ignores dilation (measured: 4 -> 5 instead
        # of 6 rows for k=2, d=2), so the artifact could not be verified or deployed there.
        raise node.error(f"dilations {dilations}: OpenCV's Caffe Deconvolution ignores dilation")
    shape, out_shape = ctx.in_shape(node), ctx.out_shape(node)
    group = int(node.attr("group", 1))
    if w.shape[0] != shape[1] or group < 1 or shape[1] % group:
        raise node.error(
            f"group {group} and weight shape {list(w.shape)} do not fit the input's "
            f"{shape[1]} channels"
        )
    pads = list(node.attr("pads", [0, 0, 0, 0]))
    caffe_pads, begins, full = [], [0, 0], list(out_shape[:2])
    for a in range(2):
        whole = strides[a] * (shape[2 + a] - 1) + dilations[a] * (kernel[a] - 1) + 1
        keep_from, n = pads[a], out_shape[2 + a]
        if keep_from + n > whole:
            raise node.error(
                f"output_padding/pads {pads} ask for values beyond the full transposed "
                f"convolution on axis {2 + a}; Caffe cannot produce them"
            )
        p = min(keep_from, whole - keep_from - n)  # the largest symmetric pad that keeps it
        caffe_pads.append(p)
        begins.append(keep_from - p)
        full.append(whole - 2 * p)
    out = node.outputs[0]
    cropped = full != list(out_shape)
    top = ctx.fresh(f"{out}/uncropped") if cropped else out
    num_output = w.shape[1] * group
    blobs = [w] if b is None else [w, np.asarray(b)]
    layer = ctx.add_layer("Deconvolution", [ctx.bottom(node)], [top], blobs)
    _fill(layer.convolution_param, num_output, b, kernel, strides, caffe_pads, dilations, group)
    if cropped:
        crop(ctx, top, full, begins, list(out_shape), out)
