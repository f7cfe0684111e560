"""Interp (DeepLab v2 / PSPNet forks), Upsample (YOLOv3 ports; SegNet unpooling), MaxUnPool.

Interp (``interp_layer.cpp``): crop by ``pad_beg``/``pad_end`` (only <= 0 is allowed, as in
Caffe), then bilinear resize with align_corners: ``src = dst * (in - 1) / (out - 1)`` (0 when
out == 1), which is ONNX Resize ``linear`` / ``align_corners``. Output size, in DeepLab v2's
order of precedence (a superset of PSPNet's, which demands exactly one)::

    shrink_factor only:     out = (in_eff - 1) / shrink + 1
    zoom_factor only:       out = in_eff + (in_eff - 1) * (zoom - 1)
    height and width:       out = (height, width)
    shrink and zoom:        shrink first, then zoom, both as above
    a second bottom:        out = bottom 1's (H, W)

Upsample (nearest, integer factor): ``y[i, j] = x[i // scale_h, j // scale_w]``, which is ONNX
Resize ``nearest`` / ``asymmetric`` / ``floor`` with float32 scales. ``upsample_h``/``upsample_w``
fix the output size (cropping the last rows).

SegNet's/ENet's two-bottom Upsample is max-unpooling (``upsample_layer.cpp`` there): a zero
output of ``upsample_h x upsample_w`` (else ``H * scale - pad_out``, SegNet's default scale 2)
with ``top[mask[i]] = bottom[i]`` per channel plane. That is ONNX MaxUnpool once the per-plane
mask is offset to whole-tensor indices. Exact only when no two inputs write one output, which
holds when the mask comes from a Pooling layer whose windows do not overlap (stride >= kernel);
any other mask is refused, since the winner of a write collision is unspecified in ONNX.
brocolli-caffe's ``MaxUnPool`` is the same operation with the size in ``max_unpool_param``.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from converters.caffe.layers.activation import check_one_to_one
from converters.caffe.registry import register


def _shape4(layer, ctx):
    shape = ctx.in_shape(layer)
    if len(shape) != 4:
        raise layer.error(f"input must be 4-D (N, C, H, W), got shape {list(shape)}")
    return shape


def _factor(layer, p, field: str) -> int:
    value = getattr(p, field)
    if value < 1:
        raise layer.error(f"interp_param.{field} must be >= 1, got {value}")
    return value


def _shrink(h: int, w: int, s: int) -> tuple[int, int]:
    return (h - 1) // s + 1, (w - 1) // s + 1


def _zoom(h: int, w: int, z: int) -> tuple[int, int]:
    return h + (h - 1) * (z - 1), w + (w - 1) * (z - 1)


def _interp_size(layer, ctx, p, h: int, w: int) -> tuple[int, int]:
    has = p.HasField
    shrink, zoom = has("shrink_factor"), has("zoom_factor")
    if shrink and not zoom:
        return _shrink(h, w, _factor(layer, p, "shrink_factor"))
    if zoom and not shrink:
        return _zoom(h, w, _factor(layer, p, "zoom_factor"))
    if has("height") and has("width"):
        return p.height, p.width
    if shrink and zoom:
        h, w = _shrink(h, w, _factor(layer, p, "shrink_factor"))
        return _zoom(h, w, _factor(layer, p, "zoom_factor"))
    if len(layer.bottoms) == 2:
        return tuple(ctx.in_shape4(layer, 1)[2:4])
    raise layer.error("interp_param needs zoom_factor, shrink_factor, height and width, "
                      "or a second bottom giving the output size")  # fmt: skip


@register("Interp")
def interp(layer, ctx):
    """Crop by pad_beg/pad_end, then bilinear Resize with align_corners (Caffe's rules)."""
    if len(layer.bottoms) not in (1, 2) or len(layer.tops) != 1:
        raise layer.error(f"expected 1 or 2 bottoms and 1 top, "
                          f"got {len(layer.bottoms)} and {len(layer.tops)}")  # fmt: skip
    p = layer.param("interp_param")
    x = ctx.input(layer)
    n, c, h, w = _shape4(layer, ctx)
    beg, end = p.pad_beg, p.pad_end
    if beg > 0 or end > 0:
        raise layer.error(f"only cropping (pad_beg, pad_end <= 0) is supported, as in Caffe; "
                          f"got pad_beg {beg}, pad_end {end}")  # fmt: skip
    he, we = h + beg + end, w + beg + end
    if he <= 0 or we <= 0:
        raise layer.error(f"pad_beg {beg} and pad_end {end} crop the whole {h}x{w} input")
    oh, ow = _interp_size(layer, ctx, p, he, we)
    if oh <= 0 or ow <= 0:
        raise layer.error(f"output size {oh}x{ow} must be positive")
    resize = (oh, ow) != (he, we)  # Caffe copies when the sizes match
    if beg or end:
        x = ctx.slice(x, [-beg, -beg], [h + end, w + end], [2, 3],
                      output=None if resize else ctx.top_name(layer), hint=f"{layer.name}/crop")  # fmt: skip
    if resize:
        sizes = ctx.ints(f"{layer.name}/sizes", [n, c, oh, ow])
        x = ctx.node("Resize", [x, "", "", sizes], ctx.top_name(layer), mode="linear",
                     coordinate_transformation_mode="align_corners")  # fmt: skip
    ctx.set_top(layer, 0, x, (n, c, oh, ow))


def _upsample_factors(layer, p, h: int, w: int) -> tuple[int, int]:
    has = p.HasField
    if has("scale_h") or has("scale_w"):
        if not (has("scale_h") and has("scale_w")) or has("scale"):
            raise layer.error("give upsample_param.scale, or both scale_h and scale_w")
        sh, sw = p.scale_h, p.scale_w
    elif has("scale"):
        sh = sw = p.scale
    elif has("upsample_h") and has("upsample_w"):
        if p.upsample_h % h or p.upsample_w % w:
            raise layer.error(f"upsample_h x upsample_w {p.upsample_h}x{p.upsample_w} is not a "
                              f"multiple of the {h}x{w} input; give scale as well")  # fmt: skip
        sh, sw = p.upsample_h // h, p.upsample_w // w
    else:
        # The schemas disagree on the default (SegNet 2, YOLO ports 1): refuse to guess.
        raise layer.error("upsample_param needs scale, scale_h/scale_w or upsample_h/upsample_w")
    if sh < 1 or sw < 1:
        raise layer.error(f"upsample scale must be >= 1, got {sh}x{sw}")
    return sh, sw


def _unpool(layer, ctx, size=None):
    """MaxUnpool of bottom 0 by the mask in bottom 1; ``size`` (H, W), else upsample_param's."""
    x, m = ctx.input(layer, 0), ctx.input(layer, 1)
    n, c, h, w = _shape4(layer, ctx)
    if ctx.shape(m) != (n, c, h, w):
        raise layer.error(f"mask bottom '{layer.bottoms[1]}' has shape {list(ctx.shape(m))}, "
                          f"expected the data bottom's {[n, c, h, w]}")  # fmt: skip
    disjoint, plane, pool = ctx.pool_masks.get(m, (False, None, None))
    if not disjoint:
        what = (
            "comes from a Pooling layer whose windows overlap, so two inputs may unpool to "
            "one position"
            if pool
            else "is not a Pooling layer's mask top"
        )
        raise layer.error(f"mask bottom '{layer.bottoms[1]}' {what}; max-unpooling is only "
                          f"converted exactly for non-overlapping MAX pooling masks")  # fmt: skip
    p = layer.param("upsample_param") if size is None else None
    has = p.HasField if p is not None else None
    if size is not None:
        oh, ow = size
    elif has("upsample_h") and has("upsample_w"):
        oh, ow = p.upsample_h, p.upsample_w
    else:
        sh, sw = (p.scale_h, p.scale_w) if has("scale_h") and has("scale_w") else (p.scale,) * 2
        if (p.pad_out_h and sh != 2) or (p.pad_out_w and sw != 2):
            raise layer.error("pad_out_h/pad_out_w need scale 2 (Caffe's own check)")
        oh, ow = h * sh - int(p.pad_out_h), w * sw - int(p.pad_out_w)
    if (oh, ow) != plane:
        # The mask's indices are h * W + w of the pooled plane: any other size scatters them
        # to other rows (Caffe does so silently, or aborts when one falls outside).
        raise layer.error(f"unpools to {oh}x{ow}, but mask '{layer.bottoms[1]}' indexes the "
                          f"{plane[0]}x{plane[1]} input of pooling layer '{pool}'; set "
                          f"upsample_h: {plane[0]} upsample_w: {plane[1]}")  # fmt: skip
    planes = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (oh * ow)
    idx = ctx.node("Cast", [m], hint=f"{layer.name}/mask_int", to=TensorProto.INT64)
    idx = ctx.node("Add", [idx, ctx.const(f"{layer.name}/planes", planes, np.int64)],
                   hint=f"{layer.name}/indices")  # fmt: skip
    k = [max(1, oh // h), max(1, ow // w)]
    y = ctx.node("MaxUnpool", [x, idx, ctx.ints(f"{layer.name}/out_shape", [n, c, oh, ow])],
                 ctx.top_name(layer), kernel_shape=k, strides=k)  # fmt: skip
    ctx.set_top(layer, 0, y, (n, c, oh, ow))


@register("Upsample")
def upsample(layer, ctx):
    """Nearest-neighbour Resize by integer factors; with a mask bottom, SegNet MaxUnpool."""
    if len(layer.bottoms) == 2 and len(layer.tops) == 1:
        _unpool(layer, ctx)
        return
    check_one_to_one(layer)
    p = layer.param("upsample_param")
    if p.pad_out_h or p.pad_out_w:
        raise layer.error("upsample_param.pad_out_h/pad_out_w (SegNet unpooling) are not supported")
    x = ctx.input(layer)
    n, c, h, w = _shape4(layer, ctx)
    sh, sw = _upsample_factors(layer, p, h, w)
    out = (h * sh, w * sw)
    if p.HasField("upsample_h") or p.HasField("upsample_w"):
        out = (p.upsample_h, p.upsample_w)
        # Every output row must read an existing input row, and every input row be read.
        if (out[0] - 1) // sh + 1 != h or (out[1] - 1) // sw + 1 != w:
            raise layer.error(f"upsample_h x upsample_w {out[0]}x{out[1]} does not fit a "
                              f"{h}x{w} input upsampled by {sh}x{sw}")  # fmt: skip
    crop = out != (h * sh, w * sw)
    if (sh, sw) != (1, 1):
        scales = ctx.const(f"{layer.name}/scales", np.array([1, 1, sh, sw], dtype=np.float32))
        x = ctx.node("Resize", [x, "", scales], None if crop else ctx.top_name(layer),
                     hint=f"{layer.name}/resize", mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")  # fmt: skip
    if crop:
        x = ctx.slice(x, [0, 0], list(out), [2, 3], output=ctx.top_name(layer), hint=layer.name)
    ctx.set_top(layer, 0, x, (n, c, *out))


@register("MaxUnPool")
def max_unpool(layer, ctx):
    """brocolli-caffe's MaxUnPool: SegNet unpooling to max_unpool_param.dst_h x dst_w."""
    if len(layer.bottoms) != 2 or len(layer.tops) != 1:
        raise layer.error(f"expected 2 bottoms (data, Pooling mask) and 1 top, "
                          f"got {len(layer.bottoms)} and {len(layer.tops)}")  # fmt: skip
    p = layer.param("max_unpool_param")
    if not (p.HasField("dst_h") and p.HasField("dst_w")):
        raise layer.error("needs max_unpool_param { dst_h: ... dst_w: ... }")
    _unpool(layer, ctx, (p.dst_h, p.dst_w))
