"""MaxRoiPool -> Caffe ``ROIPooling`` (Fast/Faster R-CNN, rbgirshick/caffe-fast-rcnn).

The layer takes the same inputs: features ``(N, C, H, W)`` and ROIs ``(R, 5)`` = ``(batch
index, x1, y1, x2, y2)`` in image pixels, ``pooled_h``/``pooled_w`` = ``pooled_shape`` and a
float32 ``spatial_scale`` (written in protobuf's shortest round-tripping form, so it parses back
to the same float32). onnxruntime's kernel is a port of Caffe's (``converters/caffe/layers/
roi_pooling.py`` has the step-by-step comparison): the same corner rounding, bin edges,
clipping, 0 for an empty bin and a maximum starting at ``-FLT_MAX``. The one difference is NaN
features: Caffe's ``>`` skips a NaN; onnxruntime's ``std::max(value, current)`` puts it in and
the next value replaces it, so a bin is the maximum of what follows its last NaN (NaN when the
NaN is last). OpenVINO's ROIPooling starts at ``-inf``, so an all ``-inf`` bin is ``-inf`` there
and ``-FLT_MAX`` in Caffe and onnxruntime.

zoomake's own Caffe -> ONNX conversion writes ``MaxRoiPool`` followed by ``Max(y, -FLT_MAX)``
(for OpenVINO); Caffe's output never falls below ``-FLT_MAX``, so that ``Max`` is the identity
on it and is folded back into the layer (``absorb_floor``), giving the source's single layer.

Refused, one line each: ``pooled_shape`` not two positive sizes, ``spatial_scale`` not positive
and finite (onnxruntime refuses both too), features not 4-D, ROIs not a 2-D ``(R, 5)`` tensor of
static shape (Caffe reads 5 numbers per ROI and sizes its top from the ROI count), and constant
ROIs (Caffe has no constant layer; feed them as an input).
"""

from __future__ import annotations

import math

import numpy as np

from converters.onnx2caffe.registry import register

FLT_MAX = float(np.finfo(np.float32).max)


@register("MaxRoiPool")
def max_roi_pool(node, ctx):
    """ROIPooling (same ROI layout, rounding and bins; NaN features differ)."""
    pooled = list(node.attr("pooled_shape") or [])
    if len(pooled) != 2 or min(pooled) <= 0:
        raise node.error(f"pooled_shape must be two positive sizes (pooled_h, pooled_w), "
                         f"got {pooled}")  # fmt: skip
    scale = float(node.attr("spatial_scale", 1.0))
    if not (math.isfinite(scale) and scale > 0):
        raise node.error(f"spatial_scale must be positive and finite, got {scale}")
    shape = ctx.in_shape(node, 0)
    if len(shape) != 4:
        raise node.error(f"features must be 4-D (N, C, H, W), got shape {list(shape)}")
    if ctx.is_const(node.input(1)):
        raise node.error(f"the ROIs '{node.input(1)}' are a constant; Caffe has no constant "
                         f"layer: make them a graph input")  # fmt: skip
    rois = ctx.in_shape(node, 1)
    if len(rois) != 2 or rois[1] != 5:
        raise node.error(f"ROIs must be (R, 5) = (batch index, x1, y1, x2, y2), "
                         f"got shape {list(rois)}")  # fmt: skip
    layer = ctx.add_layer("ROIPooling", [ctx.bottom(node, 0), ctx.bottom(node, 1)],
                          [node.outputs[0]])  # fmt: skip
    p = layer.roi_pooling_param
    p.pooled_h, p.pooled_w = int(pooled[0]), int(pooled[1])
    p.spatial_scale = scale


def absorb_floor(node, ctx, x: str, floor: float) -> bool:
    """``Max(x, floor)`` where ``x`` is a ROIPooling top and ``floor <= -FLT_MAX``: the identity
    on what Caffe's layer computes, so the layer takes the Max's name; False otherwise."""
    blob = ctx.blob(node, x)
    writer = ctx.writer(blob)
    if floor > -FLT_MAX or writer is None or writer.type != "ROIPooling":
        return False
    out = node.outputs[0]
    alone = [id(n) for n in ctx.consumers.get(x, [])] == [id(node)]
    if alone and writer.top[0] == blob == x and not ctx.has_blob(out):
        blob = ctx.rename_blob(blob, out)  # the Caffe layer is named like the source's
        ctx.define(x, blob)
    ctx.define(out, blob)
    return True
