"""Split, Dropout and Silence: layers that do (almost) nothing at inference time.

Split and Dropout alias their tops to the bottom value, so they add no ONNX node (the driver
adds an Identity only when an alias is a graph output). Dropout in the faster-rcnn fork with
``scale_train: false`` scales at inference instead of during training: ``y = x * (1 - ratio)``.
"""

from __future__ import annotations

from converters.caffe.registry import register


@register("Split")
def split(layer, ctx):
    """Every top is the bottom blob (an alias, no node)."""
    if len(layer.bottoms) != 1:
        raise layer.error(f"expected 1 bottom blob, got {len(layer.bottoms)}")
    x = ctx.input(layer)
    for i in range(len(layer.tops)):
        ctx.set_top(layer, i, x, ctx.shape(x))


@register("Dropout")
def dropout(layer, ctx):
    """Identity; the fork's ``scale_train: false`` multiplies by ``1 - dropout_ratio``."""
    x = ctx.input(layer)
    p = layer.param("dropout_param")
    if p.scale_train:
        ctx.set_top(layer, 0, x, ctx.shape(x))
        return
    ratio = float(p.dropout_ratio)
    if not 0.0 <= ratio < 1.0:
        raise layer.error(f"dropout_ratio must be in [0, 1), got {ratio}")
    scale = ctx.const(f"{layer.name}/keep", 1.0 - ratio)
    ctx.set_top(layer, 0, ctx.node("Mul", [x, scale], ctx.top_name(layer)), ctx.shape(x))


@register("Silence")
def silence(layer, ctx):
    """Consumes its bottoms (so they stop being net outputs) and produces nothing."""
    if layer.tops:
        raise layer.error(f"Silence has no tops, got {len(layer.tops)}: {', '.join(layer.tops)}")
    ctx.inputs(layer)  # a missing bottom is still an error
