"""Resize / Upsample: nearest integer factors -> Deconvolution, bilinear align_corners -> Interp."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node


def _f(*v):
    return np.array(v, dtype=np.float32)


def _resize(scales=None, sizes=None, shape=(1, 3, 4, 5), opset=17, **attrs):
    inits = {"roi": _f()}
    ins = ["x", "roi"]
    if scales is not None:
        inits["sc"] = _f(*scales)
        ins.append("sc")
    else:
        inits["sc"] = _f()
        inits["sz"] = np.array(sizes, dtype=np.int64)
        ins += ["sc", "sz"]
    return make_model([node("Resize", ins, "y", **attrs)], {"x": shape}, ["y"], inits,
                      opset=opset)  # fmt: skip


@pytest.mark.parametrize(
    ("attrs", "scales"),
    [
        ({}, (1, 1, 2, 2)),  # half_pixel + round_prefer_floor: the opset 11+ defaults
        (dict(coordinate_transformation_mode="asymmetric", nearest_mode="floor"), (1, 1, 3, 2)),
        (dict(coordinate_transformation_mode="pytorch_half_pixel"), (1, 1, 2, 4)),
    ],
)
def test_nearest_integer_factor(tmp_path, attrs, scales):
    model = _resize(scales, mode="nearest", **attrs)
    net, _ = build_net(model)
    assert net.layer[-1].type == "Deconvolution"
    convert_and_compare(tmp_path, model)


def test_upsample_opset9(tmp_path):
    model = make_model([node("Upsample", ["x", "s"], "y", mode="nearest")], {"x": (1, 2, 3, 3)},
                       ["y"], {"s": _f(1, 1, 2, 2)}, opset=9)  # fmt: skip
    convert_and_compare(tmp_path, model)


def test_bilinear_align_corners(tmp_path):
    model = _resize(sizes=[1, 3, 9, 7], mode="linear",
                    coordinate_transformation_mode="align_corners")  # fmt: skip
    net, _ = build_net(model)
    assert net.layer[-1].type == "Interp"
    convert_and_compare(tmp_path, model)


def test_refuses_half_pixel_bilinear():
    with pytest.raises(
        ConversionError,
        match=r"'resize_y' \(Resize\): bilinear with "
        r"coordinate_transformation_mode 'half_pixel'",
    ):
        build_net(_resize((1, 1, 2, 2), mode="linear"))


@pytest.mark.parametrize(
    ("scales", "attrs"),
    [((1, 1, 1.5, 1.5), {}),
     ((1, 1, 3, 3), dict(coordinate_transformation_mode="align_corners"))],
)  # fmt: skip
def test_refuses_non_integer_nearest(scales, attrs):
    with pytest.raises(ConversionError, match="is not an integer-factor upsampling"):
        build_net(_resize(scales, mode="nearest", **attrs))
