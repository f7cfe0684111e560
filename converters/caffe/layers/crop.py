"""Crop: cut bottom 0 down to the shape of bottom 1 from ``axis`` (default 2) on.

Dims before ``axis`` are kept whole; each later dim ``i`` takes bottom 1's size starting at
``offset`` (one value for every cropped dim, one value per cropped dim, or none = 0). Bottom 1
only supplies a shape, so the ONNX graph does not read it: the crop is a constant Slice.
"""

from __future__ import annotations

from converters.caffe.layers._axes import canonical_axis
from converters.caffe.registry import register


@register("Crop")
def crop(layer, ctx):
    """Constant Slice of bottom 0 to bottom 1's shape from ``axis`` on, at ``offset``."""
    if len(layer.bottoms) != 2:
        raise layer.error(f"expected 2 bottom blobs (data, reference), got {len(layer.bottoms)}")
    x = ctx.input(layer)
    shape, ref = ctx.shape(x), ctx.in_shape(layer, 1)
    if len(shape) != len(ref):
        raise layer.error(f"bottoms have different ranks: {list(shape)} and {list(ref)}")
    p = layer.param("crop_param")
    axis = canonical_axis(layer, p.axis, len(shape), "crop_param.axis")
    offsets = [int(o) for o in p.offset]
    cropped = len(shape) - axis
    if len(offsets) > 1 and len(offsets) != cropped:
        raise layer.error(
            f"{len(offsets)} offsets given; expected 1 or {cropped} (one per dim from axis {axis})"
        )
    if len(offsets) <= 1:
        offsets = (offsets or [0]) * cropped
    axes = list(range(axis, len(shape)))
    ends = []
    for a, off in zip(axes, offsets, strict=True):
        if off + ref[a] > shape[a]:
            raise layer.error(
                f"dim {a}: offset {off} + size {ref[a]} exceeds the bottom's "
                f"{shape[a]} (bottom {list(shape)}, reference {list(ref)})"
            )
        ends.append(off + ref[a])
    out_shape = [*shape[:axis], *ref[axis:]]
    y = ctx.slice(x, offsets, ends, axes, output=ctx.top_name(layer), hint=layer.name)
    ctx.set_top(layer, 0, y, out_shape)
