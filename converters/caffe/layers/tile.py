"""Tile: repeat the block of dims from ``axis`` on, ``tiles`` times (``np.tile`` on one axis).

Caffe copies the whole ``count(axis)`` block ``tiles`` times per outer index, which is exactly
ONNX Tile with ``repeats`` 1 everywhere except ``tiles`` at ``axis``.
"""

from __future__ import annotations

from converters.caffe.layers._axes import canonical_axis
from converters.caffe.registry import register


@register("Tile")
def tile(layer, ctx):
    """ONNX Tile with ``tiles`` repeats at ``axis`` (default 1)."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("tile_param")
    axis = canonical_axis(layer, p.axis, len(shape), "tile_param.axis")
    if not p.HasField("tiles") or p.tiles <= 0:
        raise layer.error(f"tile_param.tiles must be given and positive, got {p.tiles}")
    repeats = [1] * len(shape)
    repeats[axis] = int(p.tiles)
    out_shape = [d * r for d, r in zip(shape, repeats, strict=True)]
    y = ctx.node("Tile", [x, ctx.ints(f"{layer.name}/repeats", repeats)], ctx.top_name(layer))
    ctx.set_top(layer, 0, y, out_shape)
