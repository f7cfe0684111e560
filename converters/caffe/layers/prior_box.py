"""PriorBox (SSD fork, weiliu89/caffe ``prior_box_layer.cpp``), folded to a constant.

The priors depend only on the shapes of bottom 0 (feature map, H x W) and bottom 1 (image), so
the layer becomes one constant of shape (1, 2, H * W * num_priors * 4): row 0 holds the boxes
(xmin, ymin, xmax, ymax per prior, normalized by the image size), row 1 the variances.

Caffe's arithmetic, reproduced type for type (float32 unless noted):
- aspect ratios: [1] then each new ``aspect_ratio`` (duplicates within 1e-6 dropped), each
  followed by its reciprocal when ``flip`` (default true);
- image size: ``img_h``/``img_w`` or ``img_size`` if given, else bottom 1's H, W;
  step: ``step_h``/``step_w`` or ``step`` if given, else image size / feature size;
- per cell (row-major) and per ``min_size`` (truncated to int, as Caffe stores it in an int):
  the min box, then sqrt(min * max) if ``max_size`` (int product), then
  ``min * sqrt(ar)`` x ``min / sqrt(ar)`` for each ratio != 1 (roots in double, sizes stored
  as float32);
- centre ``(w + offset) * step``; each coordinate is ``(centre -/+ size / 2.) / img`` in
  double, then stored as float32; ``clip`` (default false in SSD Caffe, true in OpenCV's
  schema) clamps to [0, 1];
- variance: one value for all, or exactly four (default 0.1).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import numpy_helper

from converters.caffe.registry import register

f32 = np.float32


def _aspect_ratios(ratios, flip: bool) -> list[np.float32]:
    out = [f32(1.0)]
    for ar in (f32(r) for r in ratios):
        if any(abs(float(ar) - float(a)) < 1e-6 for a in out):
            continue
        out.append(ar)
        if flip:
            out.append(f32(1.0 / float(ar)))
    return out


def _box_sizes(min_sizes, max_sizes, ratios) -> list[tuple[np.float32, np.float32]]:
    sizes = []
    for s, min_value in enumerate(min_sizes):
        mn = int(min_value)  # Caffe: `int min_size_ = min_sizes_[s];`
        sizes.append((f32(mn), f32(mn)))
        if max_sizes:
            side = f32(math.sqrt(mn * int(max_sizes[s])))
            sizes.append((side, side))
        for ar in ratios:
            if abs(float(ar) - 1.0) < 1e-6:
                continue
            root = math.sqrt(float(ar))
            sizes.append((f32(mn * root), f32(mn / root)))
    return sizes


def _pair(layer, p, single: str, h: str, w: str):
    """Caffe's either-``single``-or-``h``/``w`` rule; (0, 0) when neither is given."""
    if p.HasField(h) or p.HasField(w):
        if p.HasField(single):
            raise layer.error(f"give either prior_box_param.{single} or {h}/{w}, not both")
        vh, vw = getattr(p, h), getattr(p, w)
        if not (vh > 0 and vw > 0):
            raise layer.error(f"prior_box_param.{h}/{w} must both be positive, got {vh:g}/{vw:g}")
        return vh, vw
    if p.HasField(single):
        v = getattr(p, single)
        if not v > 0:
            raise layer.error(f"prior_box_param.{single} must be positive, got {v:g}")
        return v, v
    return 0, 0


def _check(layer, p) -> None:
    for field in ("offset_h", "offset_w", "width", "height"):
        if len(getattr(p, field)):
            raise layer.error(f"prior_box_param.{field} (an OpenCV extension) is not supported")
    for field in ("min_size", "max_size", "aspect_ratio", "variance", "offset", "step",
                  "step_h", "step_w", "img_size", "img_h", "img_w"):  # fmt: skip
        values = getattr(p, field)
        values = list(values) if hasattr(values, "__len__") else [values]
        if not all(math.isfinite(v) for v in values):  # folded with int() and float maths
            raise layer.error(f"prior_box_param.{field} must be finite, got {values}")
    if not p.min_size:
        raise layer.error("prior_box_param needs at least one min_size")
    if any(not v > 0 for v in p.min_size):
        raise layer.error(f"prior_box_param.min_size must be positive, got {list(p.min_size)}")
    if p.max_size:
        if len(p.max_size) != len(p.min_size):
            raise layer.error(
                f"{len(p.max_size)} max_size value(s) for "
                f"{len(p.min_size)} min_size value(s); give one per min_size"
            )
        for mn, mx in zip(p.min_size, p.max_size, strict=True):
            if not mx > mn:
                raise layer.error(f"max_size {mx:g} must be greater than min_size {mn:g}")
    if len(p.variance) not in (0, 1, 4) or any(not v > 0 for v in p.variance):
        raise layer.error(f"prior_box_param.variance must be 1 or 4 positive values, "
                          f"got {list(p.variance)}")  # fmt: skip


# The folded constant lives in the ONNX proto (2 GiB limit); real SSD heads need well under a
# million values (SSD300: 8732 priors = 69,856), so 2**27 only stops runaway input shapes.
MAX_VALUES = 1 << 27


def prior_boxes(p, feature_hw, image_hw, img_hw, step_hw) -> np.ndarray:
    """The (1, 2, H*W*num_priors*4) float32 PriorBox output for these shapes."""
    fh, fw = feature_hw
    ih, iw = img_hw if img_hw[0] and img_hw[1] else image_hw
    if step_hw[0] and step_hw[1]:
        sh, sw = f32(step_hw[0]), f32(step_hw[1])
    else:
        sh, sw = f32(f32(ih) / f32(fh)), f32(f32(iw) / f32(fw))
    sizes = _box_sizes(p.min_size, p.max_size, _aspect_ratios(p.aspect_ratio, p.flip))
    half_w = np.array([float(bw) / 2.0 for bw, _ in sizes])  # C++ `box_width / 2.` is double
    half_h = np.array([float(bh) / 2.0 for _, bh in sizes])
    off = f32(p.offset)
    cx = ((np.arange(fw, dtype=f32) + off) * sw).astype(np.float64)  # float32 centre
    cy = ((np.arange(fh, dtype=f32) + off) * sh).astype(np.float64)
    cx, cy = cx[None, :, None], cy[:, None, None]
    boxes = np.stack(np.broadcast_arrays((cx - half_w) / iw, (cy - half_h) / ih,
                                         (cx + half_w) / iw, (cy + half_h) / ih), -1)  # fmt: skip
    boxes = boxes.astype(f32).ravel()
    if p.clip:
        boxes = np.clip(boxes, f32(0), f32(1))
    variance = np.asarray(list(p.variance) or [0.1], dtype=f32)
    variances = np.tile(variance, boxes.size // variance.size)
    return np.stack([boxes, variances])[None]


@register("PriorBox")
def prior_box(layer, ctx):
    """SSD prior boxes computed at conversion time into a constant (1, 2, H*W*priors*4)."""
    if len(layer.bottoms) != 2 or len(layer.tops) != 1:
        raise layer.error(f"expected 2 bottoms (feature map, image) and 1 top, "
                          f"got {len(layer.bottoms)} and {len(layer.tops)}")  # fmt: skip
    p = layer.param("prior_box_param")
    _check(layer, p)
    img_hw = _pair(layer, p, "img_size", "img_h", "img_w")
    step_hw = _pair(layer, p, "step", "step_h", "step_w")
    feature, image = ctx.in_shape(layer, 0), ctx.in_shape(layer, 1)
    if len(feature) != 4 or len(image) != 4:
        raise layer.error(f"bottoms must be 4-D, got shapes {list(feature)} and {list(image)}")
    per_cell = len(_box_sizes(p.min_size, p.max_size, _aspect_ratios(p.aspect_ratio, p.flip)))
    values = 2 * feature[2] * feature[3] * per_cell * 4
    if values > MAX_VALUES:
        raise layer.error(
            f"the prior boxes of a {feature[2]}x{feature[3]} feature map ({per_cell} per cell) "
            f"would be a constant of {values} values, over the {MAX_VALUES} this converter folds"
        )
    priors = prior_boxes(p, feature[2:], image[2:], img_hw, step_hw)
    value = numpy_helper.from_array(priors, "value")
    y = ctx.node("Constant", [], ctx.top_name(layer), value=value)
    ctx.set_top(layer, 0, y, priors.shape)
