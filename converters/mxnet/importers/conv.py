"""Convolution -> Conv, Deconvolution -> ConvTranspose (NCHW layouts only).

MXNet's Deconvolution crops ``pad`` at the start and ``pad - adj`` at the end of the full
transposed output: ONNX pads ``[pad, pad]`` with ``output_padding = adj``.
"""

from __future__ import annotations

from converters.mxnet.source import register


def _common(node, ctx, n: int) -> dict:
    layout = node.text("layout")
    if layout not in (None, "NCW", "NCHW", "NCDHW"):
        raise node.error(f"layout {layout} (channel-first layouts only)")
    pad = node.tuple("pad", (0,) * n) or (0,) * n
    return {"kernel_shape": list(node.tuple("kernel")),
            "strides": list(node.tuple("stride", (1,) * n) or (1,) * n),
            "dilations": list(node.tuple("dilate", (1,) * n) or (1,) * n),
            "pads": list(pad) * 2, "group": node.int("num_group", 1)}  # fmt: skip


def _inputs(node, ctx) -> list[str]:
    ins = [ctx.input(node, 0), ctx.input(node, 1)]
    if not node.bool("no_bias", False):
        ins.append(ctx.input(node, 2))
    return ins


@register("Convolution")
def convolution(node, ctx):
    """Conv with kernel/stride/dilate/pad/num_group."""
    attrs = _common(node, ctx, len(node.tuple("kernel")))
    ctx.emit("Conv", _inputs(node, ctx), ctx.out(node), **attrs)


@register("Deconvolution")
def deconvolution(node, ctx):
    """ConvTranspose with output_padding = adj."""
    n = len(node.tuple("kernel"))
    if node.tuple("target_shape") and any(node.tuple("target_shape")):
        raise node.error("target_shape is not supported; give pad and adj")
    attrs = _common(node, ctx, n)
    adj = node.tuple("adj", (0,) * n) or (0,) * n
    if any(adj):
        attrs["output_padding"] = list(adj)
    ctx.emit("ConvTranspose", _inputs(node, ctx), ctx.out(node), **attrs)
