"""Conv -> Convolution, ConvTranspose -> Deconvolution (groups, dilation; weights in params).

MXNet pads symmetrically: ONNX pads that differ between begin and end become a ``Pad`` node in
front of the convolution (zeros, what ONNX pads with). ConvTranspose: MXNet crops ``pad`` at the
start and ``pad - adj`` at the end of the full transposed output, ONNX crops ``begin`` and
``end - output_padding``, so ``pad = begin`` and ``adj = begin - end + output_padding``.
"""

from __future__ import annotations

import numpy as np

from converters.mxnet.ops._geometry import onnx_pads, pad_node, spatial
from converters.mxnet.registry import register


def _weights(node, ctx):
    w = np.asarray(ctx.const(node, 1, "the weight"), dtype=np.float32)
    b = ctx.optional_const(node, 2, "the bias")
    return w, None if b is None else np.asarray(b, dtype=np.float32)


@register("Conv")
def conv(node, ctx):
    """Convolution with kernel/stride/dilate/pad/num_group; asymmetric pads via Pad."""
    w, b = _weights(node, ctx)
    n = w.ndim - 2
    begin, end = onnx_pads(node, n)
    data = ctx.sym(node, 0)
    if begin != end:
        data = pad_node(node, ctx, data, begin, end)
        begin = (0,) * n
    out = node.outputs[0]
    inputs = [data, ctx.weight(f"{out}_weight", w)]
    if b is not None:
        inputs.append(ctx.weight(f"{out}_bias", b))
    attrs = {"kernel": tuple(w.shape[2:]), "stride": spatial(node, "strides", n, 1),
             "dilate": spatial(node, "dilations", n, 1), "pad": tuple(begin),
             "num_filter": w.shape[0], "num_group": int(node.attr("group", 1)),
             "no_bias": b is None}  # fmt: skip
    ctx.out(node, "Convolution", inputs, attrs)


@register("ConvTranspose")
def conv_transpose(node, ctx):
    """Deconvolution with pad/adj derived from ONNX's begin/end pads and output_padding."""
    w, b = _weights(node, ctx)
    n = w.ndim - 2
    if node.attr("output_shape"):
        raise node.error("output_shape is not supported; give pads and output_padding")
    begin, end = onnx_pads(node, n)
    stride = spatial(node, "strides", n, 1)
    dilate = spatial(node, "dilations", n, 1)
    extra = spatial(node, "output_padding", n, 0)
    adj = tuple(bg - e + op for bg, e, op in zip(begin, end, extra, strict=True))
    if any(a < 0 or a >= max(s, d) for a, s, d in zip(adj, stride, dilate, strict=True)):
        raise node.error(f"pads {list(begin) + list(end)} with output_padding {list(extra)} "
                         f"need adj {list(adj)}, outside MXNet's 0 <= adj < stride")  # fmt: skip
    group = int(node.attr("group", 1))
    out = node.outputs[0]
    inputs = [ctx.sym(node, 0), ctx.weight(f"{out}_weight", w)]
    if b is not None:
        inputs.append(ctx.weight(f"{out}_bias", b))
    attrs = {"kernel": tuple(w.shape[2:]), "stride": stride, "dilate": dilate,
             "pad": tuple(begin), "adj": adj, "num_filter": w.shape[1] * group,
             "num_group": group, "no_bias": b is None}  # fmt: skip
    ctx.out(node, "Deconvolution", inputs, attrs)
