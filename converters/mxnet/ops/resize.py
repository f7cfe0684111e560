"""Resize / Upsample: nearest by an integer factor -> UpSampling, bilinear -> BilinearResize2D.

Nearest: MXNet repeats each value ``scale`` times, i.e. ``in = floor(out / scale)``. ONNX gives
that with ``asymmetric`` + ``floor``, and with ``half_pixel``/``pytorch_half_pixel`` + either
``round_prefer_*`` mode (``(o + 0.5) / k - 0.5`` rounds to ``floor(o / k)`` for integer k).
Bilinear (H and W only): ``align_corners`` -> ``align_corners: True``; ``half_pixel`` ->
``align_corners: False`` (MXNet's source coordinate ``(o + 0.5) * in / out - 0.5``, clamped).
"""

from __future__ import annotations

from converters.mxnet.registry import register

_NEAREST_OK = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
               ("half_pixel", "round_prefer_ceil"), ("pytorch_half_pixel", "round_prefer_floor"),
               ("pytorch_half_pixel", "round_prefer_ceil")}  # fmt: skip


@register("Resize", "Upsample")
def resize(node, ctx):
    """UpSampling(nearest, integer scale) or _contrib_BilinearResize2D(height, width)."""
    shape, out = ctx.in_shape(node), ctx.out_shape(node)
    if len(shape) != 4 or tuple(shape[:2]) != tuple(out[:2]):
        raise node.error(f"resizing {list(shape)} to {list(out)}: H and W of a 4-D tensor only")
    mode = node.attr("mode", "nearest")
    coord = node.attr("coordinate_transformation_mode", "half_pixel" if node.op == "Resize"
                      else "asymmetric")  # fmt: skip
    if node.op == "Upsample" or node.opset < 11:
        coord = "asymmetric"
    if mode == "nearest":
        near = node.attr("nearest_mode", "round_prefer_floor" if node.op == "Resize" else "floor")
        if node.op == "Upsample" or node.opset < 11:
            near = "floor"
        factors = {o / i for o, i in zip(out[2:], shape[2:], strict=True)}
        (k,) = factors if len(factors) == 1 else (None,)
        if k is None or k != int(k) or k < 1:
            raise node.error(f"nearest resize {list(shape[2:])} -> {list(out[2:])} is not one "
                             "integer factor (MXNet's UpSampling)")  # fmt: skip
        if (coord, near) not in _NEAREST_OK and k != 1:
            raise node.error(f"nearest with {coord} / {near} does not repeat each value "
                             "(MXNet's UpSampling does)")  # fmt: skip
        attrs = {"scale": int(k), "sample_type": "nearest", "num_args": 1}
        ctx.out(node, "UpSampling", [ctx.sym(node, 0)], attrs)
        return
    if mode != "linear":
        raise node.error(f"mode {mode!r} (nearest and linear only)")
    if coord not in ("align_corners", "half_pixel"):
        raise node.error(f"linear resize with {coord} coordinates (align_corners and "
                         "half_pixel only)")  # fmt: skip
    attrs = {"height": out[2], "width": out[3], "align_corners": coord == "align_corners"}
    ctx.out(node, "_contrib_BilinearResize2D", [ctx.sym(node, 0)], attrs)
