"""ROIPooling (Fast/Faster R-CNN, rbgirshick/caffe-fast-rcnn ``roi_pooling_layer.cpp``) ->
ONNX ``MaxRoiPool`` followed by ``Max(y, -FLT_MAX)``.

Bottoms: features (N, C, H, W) and ROIs (R, 5): ``(batch index, x1, y1, x2, y2)`` in image
pixels. Top: (R, C, pooled_h, pooled_w). Caffe's forward, per ROI:

- ``start/end = round(coordinate * spatial_scale)`` (float32 product, C ``round``: halves away
  from zero), ``roi_w/h = max(end - start + 1, 1)`` (an inverted ROI is one pixel),
  ``bin = roi_h / pooled_h`` in float32; the batch index is truncated to an int;
- bin ``ph`` covers rows ``[floor(ph * bin), ceil((ph + 1) * bin))`` plus ``start``, clipped to
  ``[0, H]`` (columns likewise); an empty bin is 0;
- a non-empty bin is the maximum of its values starting from ``-FLT_MAX`` with ``>``: a NaN is
  skipped, an all ``-inf`` bin gives ``-FLT_MAX``.

The ONNX spec of ``MaxRoiPool`` says none of this (no rounding, no bin edges, no empty bins).
onnxruntime's kernel is a port of Caffe's: the same float32 steps, ``std::round``, floor/ceil
edges, clipping, 0 for empty bins, a maximum starting at ``-FLT_MAX`` (since its fix of 2019,
onnxruntime PR 322; it started at FLT_MIN before, so all-negative bins came out as 1.2e-38).
OpenVINO's ``ROIPooling`` (what its ONNX reader makes of ``MaxRoiPool``) has the same edges
but starts at ``-inf``, so an all ``-inf`` bin is ``-inf`` there: the ``Max(y, -FLT_MAX)``
after the op makes that Caffe's and changes nothing else. Left different: NaN features
(onnxruntime's ``std::max`` passes a NaN on, Caffe skips it). Checked element for element
against a numpy transcription of Caffe's loop (tests/caffe/test_roi_pooling.py); a Loop-based
decomposition that does not rely on the kernels was measured 54x slower than ``MaxRoiPool``
(26 s against 0.49 s for VGG16 Faster R-CNN's 300 ROIs of 512 x 38 x 50 at 7 x 7).
"""

from __future__ import annotations

import math

import numpy as np

from converters.caffe.registry import register

f32 = np.float32


@register("ROIPooling")
def roi_pooling(layer, ctx):
    """Max pooling of each ROI into pooled_h x pooled_w bins, with Caffe's rounding."""
    if len(layer.bottoms) != 2 or len(layer.tops) != 1:
        raise layer.error(f"expected 2 bottoms (features, rois) and 1 top, "
                          f"got {len(layer.bottoms)} and {len(layer.tops)}")  # fmt: skip
    p = layer.param("roi_pooling_param")
    ph, pw = int(p.pooled_h), int(p.pooled_w)
    if ph <= 0 or pw <= 0:
        raise layer.error(f"roi_pooling_param.pooled_h/pooled_w must be positive, got {ph}/{pw}")
    if not (math.isfinite(p.spatial_scale) and p.spatial_scale > 0):
        raise layer.error(
            f"roi_pooling_param.spatial_scale must be positive, got {p.spatial_scale}"
        )
    x, rois = ctx.input(layer, 0), ctx.input(layer, 1)
    shape, rshape = ctx.shape(x), ctx.shape(rois)
    if len(shape) != 4:
        raise layer.error(f"features must be 4-D (N, C, H, W), got shape {list(shape)}")
    if not rshape or math.prod(rshape) != rshape[0] * 5:
        raise layer.error(f"rois must be (R, 5) = (batch index, x1, y1, x2, y2), "
                          f"got shape {list(rshape)}")  # fmt: skip
    r, name = rshape[0], layer.name
    boxes = rois if len(rshape) == 2 else ctx.reshape(rois, [r, 5], hint=f"{name}/rois")
    pooled = ctx.node("MaxRoiPool", [x, boxes], hint=f"{name}/pooled", pooled_shape=[ph, pw],
                      spatial_scale=float(p.spatial_scale))  # fmt: skip
    lowest = ctx.const(f"{name}/lowest", f32(-np.finfo(f32).max))
    y = ctx.node("Max", [pooled, lowest], ctx.top_name(layer))
    ctx.set_top(layer, 0, y, (r, shape[1], ph, pw))
