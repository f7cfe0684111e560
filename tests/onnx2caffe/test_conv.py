"""Conv -> Convolution and ConvTranspose -> Deconvolution, against onnxruntime in OpenCV."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node

RNG = np.random.default_rng(42)


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _conv(shape, w, b=None, **attrs):
    inputs = ["x", "w"] + (["b"] if b is not None else [])
    inits = {"w": w} | ({"b": b} if b is not None else {})
    return make_model([node("Conv", inputs, "y", **attrs)], {"x": shape}, ["y"], inits)


@pytest.mark.parametrize(
    ("shape", "w_shape", "bias", "attrs"),
    [
        ((1, 3, 9, 9), (4, 3, 3, 3), True, {}),
        ((2, 3, 9, 8), (5, 3, 3, 1), False, dict(strides=[2, 1], pads=[1, 0, 1, 0])),
        ((1, 4, 10, 10), (6, 2, 3, 3), True, dict(group=2, pads=[1, 1, 1, 1])),
        ((1, 6, 8, 8), (6, 1, 3, 3), True, dict(group=6, strides=[2, 2], pads=[1, 1, 1, 1])),
        ((1, 2, 11, 11), (3, 2, 3, 3), True, dict(dilations=[2, 3], pads=[2, 3, 2, 3])),
        ((1, 3, 8, 8), (4, 3, 3, 3), True, dict(strides=[2, 2], auto_pad="SAME_UPPER")),
        ((1, 3, 8, 8), (4, 3, 3, 3), True, dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ],
)
def test_conv_matches(tmp_path, shape, w_shape, bias, attrs):
    b = _w(w_shape[0]) if bias else None
    convert_and_compare(tmp_path, _conv(shape, _w(*w_shape), b, **attrs))


@pytest.mark.parametrize(
    "pads", [[0, 0, 1, 1], [1, 0, 0, 1], [2, 1, 0, 0], [0, 2, 1, 0], [0, 0, 3, 3]]
)
@pytest.mark.parametrize("stride", [1, 2])
def test_asymmetric_pads_crop(tmp_path, pads, stride):
    """TF-style SAME pads: a bigger symmetric Caffe pad, then a Slice crops the extra rows."""
    model = _conv((1, 2, 9, 10), _w(3, 2, 3, 3), _w(3), strides=[stride, stride], pads=pads)
    convert_and_compare(tmp_path, model)


def test_symmetric_pads_need_no_crop():
    net, _ = build_net(_conv((1, 2, 9, 9), _w(3, 2, 3, 3), pads=[1, 1, 1, 1]))
    assert [layer.type for layer in net.layer] == ["Input", "Convolution"]


def test_merged_zero_pad(tmp_path):
    """Pad (constant 0) + Conv: the Pad disappears into Caffe's conv pads."""
    pads = np.array([0, 0, 1, 2, 0, 0, 1, 0], dtype=np.int64)
    model = make_model(
        [node("Pad", ["x", "pads"], "p"), node("Conv", ["p", "w"], "y")],
        {"x": (1, 2, 7, 7)}, ["y"], {"pads": pads, "w": _w(3, 2, 3, 3)},
    )  # fmt: skip
    net, _ = build_net(model)
    assert "Pad" not in {layer.type for layer in net.layer}
    convert_and_compare(tmp_path, model)


@pytest.mark.parametrize(
    ("shape", "w_shape", "attrs"),
    [
        ((1, 3, 5, 5), (3, 4, 3, 3), {}),
        ((1, 4, 5, 6), (4, 2, 4, 4), dict(strides=[2, 2], pads=[1, 1, 1, 1])),
        ((1, 4, 5, 5), (4, 1, 3, 3), dict(strides=[2, 2], group=4, pads=[1, 1, 1, 1])),
        ((1, 2, 4, 4), (2, 3, 3, 3), dict(strides=[2, 2], pads=[1, 0, 0, 1])),
        ((1, 2, 4, 4), (2, 3, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1],
                                          output_padding=[1, 1])),
    ],
)  # fmt: skip
def test_conv_transpose_matches(tmp_path, shape, w_shape, attrs):
    model = make_model(
        [node("ConvTranspose", ["x", "w", "b"], "y", **attrs)],
        {"x": shape},
        ["y"],
        {"w": _w(*w_shape), "b": _w(w_shape[1] * attrs.get("group", 1))},
    )
    convert_and_compare(tmp_path, model)


def test_refuses_output_padding_beyond_full_output():
    """output_padding 1 with no end pad: the extra row holds only the bias, Caffe has no row."""
    model = make_model(
        [node("ConvTranspose", ["x", "w"], "y", strides=[2, 2], output_padding=[1, 1])],
        {"x": (1, 2, 4, 4)}, ["y"], {"w": _w(2, 3, 3, 3)},
    )  # fmt: skip
    with pytest.raises(ConversionError, match=r"'convtranspose_y' \(ConvTranspose\): "
                                              r"output_padding/pads"):  # fmt: skip
        build_net(model)


def test_refuses_dilated_conv_transpose():
    model = make_model([node("ConvTranspose", ["x", "w"], "y", dilations=[2, 2])],
                       {"x": (1, 2, 4, 4)}, ["y"], {"w": _w(2, 3, 2, 2)})  # fmt: skip
    with pytest.raises(ConversionError, match="OpenCV's Caffe Deconvolution ignores dilation"):
        build_net(model)


def test_refuses_1d_conv():
    model = make_model([node("Conv", ["x", "w"], "y")], {"x": (1, 2, 9)}, ["y"],
                       {"w": _w(3, 2, 3)})  # fmt: skip
    with pytest.raises(ConversionError, match=r"'conv_y' \(Conv\): only 2-D convolution"):
        build_net(model)


def test_refuses_runtime_weight():
    model = make_model([node("Conv", ["x", "w"], "y")], {"x": (1, 2, 5, 5), "w": (3, 2, 3, 3)},
                       ["y"])  # fmt: skip
    with pytest.raises(ConversionError, match=r"the weight \(input 1 'w'\) must be a constant"):
        build_net(model)


def test_refuses_nonzero_pad_value():
    model = make_model(
        [node("Pad", ["x", "pads", "v"], "p"), node("Conv", ["p", "w"], "y")],
        {"x": (1, 2, 7, 7)}, ["y"],
        {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1]), "v": np.array(1.0, np.float32),
         "w": _w(3, 2, 3, 3)},
    )  # fmt: skip
    with pytest.raises(ConversionError, match=r"'conv_y' \(Conv\): a merged Pad with value 1.0"):
        build_net(model)
