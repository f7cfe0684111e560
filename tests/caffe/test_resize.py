"""Interp and Upsample (converters/caffe/layers/resize.py).

Interp is compared with OpenCV DNN for ``zoom_factor`` and ``height``/``width``. OpenCV's Interp
ignores ``shrink_factor`` (measured: an output of 0x0) and ``pad_beg``/``pad_end`` (it resizes
the uncropped input), and takes one bottom only, so those cases are compared with ``_caffe_interp``,
a transcription of DeepLab v2's ``caffe_cpu_interp2`` (float32 ratios and weights). OpenCV 4.x has
no Caffe ``Upsample`` layer at all ("Can't create layer"): Upsample is compared with the YOLOv3
ports' nearest-neighbour forward, ``y[i, j] = x[i // scale, j // scale]``.
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

f32 = np.float32


def _caffe_interp(x, out_h, out_w, pad_beg=0, pad_end=0):
    """DeepLab's bilinear align-corners interpolation of the cropped input, in float32."""
    h_in, w_in = x.shape[2:]
    x = x[:, :, -pad_beg : h_in + pad_end, -pad_beg : w_in + pad_end]
    h1, w1 = x.shape[2:]
    if (h1, w1) == (out_h, out_w):
        return x.copy()
    rh = f32(f32(h1 - 1) / f32(out_h - 1)) if out_h > 1 else f32(0)
    rw = f32(f32(w1 - 1) / f32(out_w - 1)) if out_w > 1 else f32(0)
    y = np.zeros((*x.shape[:2], out_h, out_w), dtype=f32)
    for i in range(out_h):
        hr = f32(rh * f32(i))
        h = int(hr)
        hp = 1 if h < h1 - 1 else 0
        lh1 = f32(hr - f32(h))
        lh0 = f32(1) - lh1
        for j in range(out_w):
            wr = f32(rw * f32(j))
            w = int(wr)
            wp = 1 if w < w1 - 1 else 0
            lw1 = f32(wr - f32(w))
            lw0 = f32(1) - lw1
            y[:, :, i, j] = lh0 * (lw0 * x[:, :, h, w] + lw1 * x[:, :, h, w + wp]) + lh1 * (
                lw0 * x[:, :, h + hp, w] + lw1 * x[:, :, h + hp, w + wp]
            )
    return y


def _net(type_name: str, param: str, shape=(1, 3, 5, 7), extra_bottom: tuple | None = None):
    text = f'input: "data"\ninput_shape {{ {" ".join(f"dim: {d}" for d in shape)} }}\n'
    bottoms = 'bottom: "data"'
    if extra_bottom:
        text += f'input: "ref"\ninput_shape {{ {" ".join(f"dim: {d}" for d in extra_bottom)} }}\n'
        bottoms += ' bottom: "ref"'
    return text + f'layer {{ name: "rs" type: "{type_name}" {bottoms} top: "out" {param} }}'


@pytest.mark.parametrize(
    ("param", "out_hw"),
    [
        ("zoom_factor: 2", (9, 13)),
        ("zoom_factor: 3", (13, 19)),
        ("zoom_factor: 8", (33, 49)),  # DeepLab's final upsampling factor
        ("height: 9 width: 13", (9, 13)),
        ("height: 12 width: 11", (12, 11)),
        ("height: 3 width: 2", (3, 2)),  # downscaling
        ("height: 1 width: 1", (1, 1)),  # ratio 0: the top-left value
        ("height: 5 width: 7", (5, 7)),  # same size: Caffe copies
    ],
    ids=["zoom2", "zoom3", "zoom8", "hw-zoom-like", "hw-odd", "hw-down", "hw-1x1", "hw-same"],
)
def test_interp_against_opencv(tmp_path, param, out_hw):
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 7)).astype(f32)
    net = _net("Interp", f"interp_param {{ {param} }}")
    model, got, _ = convert_and_compare(tmp_path, net, feeds={"data": x})
    assert got["out"].shape == (1, 3, *out_hw)
    np.testing.assert_allclose(got["out"], _caffe_interp(x, *out_hw), atol=1e-5)
    if out_hw == (5, 7):
        assert op_types(model) == ["Identity"]
    else:
        assert op_types(model) == ["Resize"]
        attrs = {a.name: a.s for a in model.graph.node[0].attribute}
        assert attrs["coordinate_transformation_mode"] == b"align_corners"


@pytest.mark.parametrize(
    ("param", "out_hw", "pads", "ops"),
    [
        ("shrink_factor: 2", (3, 4), (0, 0), ["Resize"]),
        ("shrink_factor: 3", (2, 3), (0, 0), ["Resize"]),
        ("zoom_factor: 3 shrink_factor: 2", (7, 10), (0, 0), ["Resize"]),
        ("zoom_factor: 2 pad_beg: -1 pad_end: -1", (5, 9), (-1, -1), ["Slice", "Resize"]),
        ("height: 9 width: 13 pad_beg: -1", (9, 13), (-1, 0), ["Slice", "Resize"]),
        ("height: 4 width: 6 pad_end: -1", (4, 6), (0, -1), ["Slice"]),  # crop only
        # DeepLab v2 precedence: zoom alone beats height/width; height/width beat zoom+shrink.
        ("zoom_factor: 2 height: 4 width: 4", (9, 13), (0, 0), ["Resize"]),
        ("zoom_factor: 2 shrink_factor: 2 height: 4 width: 4", (4, 4), (0, 0), ["Resize"]),
    ],
    ids=["shrink2", "shrink3", "zoom-and-shrink", "zoom-crop", "hw-crop-begin", "crop-only",
         "zoom-over-hw", "hw-over-zoom-shrink"],
)  # fmt: skip
def test_interp_vs_caffe_reference(tmp_path, param, out_hw, pads, ops):
    model, got, feeds = convert_and_run(tmp_path, _net("Interp", f"interp_param {{ {param} }}"))
    assert got["out"].shape == (1, 3, *out_hw)
    np.testing.assert_allclose(got["out"], _caffe_interp(feeds["data"], *out_hw, *pads), atol=1e-5)
    assert op_types(model) == ops


def test_interp_size_from_second_bottom(tmp_path):
    net = _net("Interp", "", extra_bottom=(1, 8, 11, 6))
    _, got, feeds = convert_and_run(tmp_path, net)
    np.testing.assert_allclose(got["out"], _caffe_interp(feeds["data"], 11, 6), atol=1e-5)


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("", "interp_param needs zoom_factor, shrink_factor, height and width, or a second bottom"),
        ("interp_param { zoom_factor: 0 }", "interp_param.zoom_factor must be >= 1, got 0"),
        ("interp_param { shrink_factor: -2 }", "interp_param.shrink_factor must be >= 1, got -2"),
        ("interp_param { zoom_factor: 2 pad_beg: 1 }", "only cropping (pad_beg, pad_end <= 0)"),
        ("interp_param { zoom_factor: 2 pad_beg: -3 pad_end: -2 }", "crop the whole 5x7 input"),
        ("interp_param { height: 0 width: 4 }", "output size 0x4 must be positive"),
    ],
    ids=["no-size", "zoom0", "shrink-neg", "positive-pad", "crop-all", "zero-height"],
)
def test_interp_bad_params_are_refused(tmp_path, param, fragment):
    expect_error(tmp_path, _net("Interp", param), None, "rs", "(Interp)", fragment)


def _nearest(x, sh, sw, out_hw=None):
    y = x.repeat(sh, axis=2).repeat(sw, axis=3)
    return y if out_hw is None else y[:, :, : out_hw[0], : out_hw[1]]


@pytest.mark.parametrize(
    ("param", "factors", "out_hw", "ops"),
    [
        ("scale: 2", (2, 2), None, ["Resize"]),  # YOLOv3's upsample
        ("scale: 3", (3, 3), None, ["Resize"]),
        ("scale_h: 2 scale_w: 3", (2, 3), None, ["Resize"]),
        ("upsample_h: 10 upsample_w: 21", (2, 3), None, ["Resize"]),
        ("scale: 2 upsample_h: 9 upsample_w: 13", (2, 2), (9, 13), ["Resize", "Slice"]),
        ("scale: 1", (1, 1), None, ["Identity"]),
    ],
    ids=["scale2", "scale3", "scale-h-w", "upsample-size", "size-crop", "scale1"],
)
def test_upsample_vs_nearest_reference(tmp_path, param, factors, out_hw, ops):
    model, got, feeds = convert_and_run(tmp_path, _net("Upsample", f"upsample_param {{ {param} }}"))
    np.testing.assert_array_equal(got["out"], _nearest(feeds["data"], *factors, out_hw))
    assert op_types(model) == ops
    scales = [t for t in model.graph.initializer if t.name.endswith("scales")]
    assert all(t.data_type == 1 for t in scales)  # float32 scales


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("", "upsample_param needs scale, scale_h/scale_w or upsample_h/upsample_w"),
        ("upsample_param { scale_h: 2 }", "give upsample_param.scale, or both scale_h and scale_w"),
        ("upsample_param { scale: 0 }", "upsample scale must be >= 1, got 0x0"),
        ("upsample_param { upsample_h: 11 upsample_w: 14 }", "is not a multiple of the 5x7 input"),
        ("upsample_param { scale: 2 upsample_h: 8 upsample_w: 14 }", "does not fit a 5x7 input"),
        ("upsample_param { scale: 2 pad_out_h: true }", "pad_out_h/pad_out_w (SegNet unpooling)"),
    ],
    ids=["no-scale", "scale_h-alone", "scale0", "size-not-multiple", "size-too-small", "pad_out"],
)
def test_upsample_bad_params_are_refused(tmp_path, param, fragment):
    expect_error(tmp_path, _net("Upsample", param), None, "rs", "(Upsample)", fragment)


def test_unpooling_with_a_mask_that_is_not_a_pooling_mask_is_refused(tmp_path):
    # Converted SegNet unpooling is in test_fork_layers.py; a mask that is a plain input could
    # hold colliding indices, so it is refused.
    net = _net("Upsample", "upsample_param { scale: 2 }", extra_bottom=(1, 3, 5, 7))
    expect_error(tmp_path, net, None, "rs", "is not a Pooling layer's mask top")


@pytest.mark.parametrize("opset", [13, max_opset()])
def test_opsets(tmp_path, opset):
    net = _net("Interp", "interp_param { zoom_factor: 2 }")
    convert_and_compare(tmp_path, net, opset=opset)
    (tmp_path / "up").mkdir()
    net = _net("Upsample", "upsample_param { scale: 2 upsample_h: 9 upsample_w: 13 }")
    _, got, feeds = convert_and_run(tmp_path / "up", net, opset=opset)
    np.testing.assert_array_equal(got["out"], _nearest(feeds["data"], 2, 2, (9, 13)))
