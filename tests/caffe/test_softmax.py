"""Softmax over one axis (converters/caffe/layers/softmax.py).

Compared with OpenCV DNN at atol 1e-5 and with Caffe's forward in numpy (``softmax_layer.cpp``:
subtract the max along ``axis``, exponentiate, divide by the sum along ``axis``; every other dim
is kept, unlike ONNX opset < 13 which flattens to 2-D).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types

SHAPE = (2, 3, 4, 5)


def _net(shape, param: str = "") -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (
        f'input: "data"\ninput_shape {{ {dims} }}\n'
        f'layer {{ name: "prob" type: "Softmax" bottom: "data" top: "prob" {param} }}'
    )


def _caffe_softmax(x, axis: int) -> np.ndarray:
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _feeds(shape, scale: float = 3.0) -> dict[str, np.ndarray]:
    x = np.random.default_rng(0).standard_normal(shape) * scale
    return {"data": x.astype(np.float32)}


@pytest.mark.parametrize(
    ("param", "axis"),
    [("", 1), ("softmax_param { axis: 1 }", 1), ("softmax_param { axis: 2 }", 2),
     ("softmax_param { axis: -1 }", 3), ("softmax_param { axis: 3 }", 3),
     ("softmax_param { axis: 0 }", 0), ("softmax_param { axis: -3 }", 1)],
    ids=["default", "axis1", "axis2", "axis-1", "axis3", "axis0", "axis-3"],
)  # fmt: skip
def test_softmax_4d(tmp_path, param, axis):
    feeds = _feeds(SHAPE)
    model, got, _ = convert_and_compare(tmp_path, _net(SHAPE, param), feeds=feeds)
    ref = _caffe_softmax(feeds["data"], axis)
    np.testing.assert_allclose(got["prob"], ref, atol=1e-6)
    np.testing.assert_allclose(got["prob"].sum(axis=axis), 1.0, atol=1e-5)
    assert op_types(model) == ["Softmax"]
    assert model.graph.node[0].attribute[0].i == axis  # normalised to a non-negative axis


def test_softmax_axis_differs_from_flattened(tmp_path):
    # Guard that the axis matters: a softmax over C alone must not equal one over C*H*W.
    feeds = _feeds(SHAPE)
    _, got, _ = convert_and_compare(tmp_path, _net(SHAPE), feeds=feeds)
    flat = _caffe_softmax(feeds["data"].reshape(2, -1), 1).reshape(SHAPE)
    assert np.abs(got["prob"] - flat).max() > 0.1


@pytest.mark.parametrize("shape", [(4, 10), (2, 5, 3)], ids=["2d", "3d"])
def test_softmax_lower_rank(tmp_path, shape):
    feeds = _feeds(shape)
    _, got, _ = convert_and_compare(tmp_path, _net(shape), feeds=feeds)
    np.testing.assert_allclose(got["prob"], _caffe_softmax(feeds["data"], 1), atol=1e-6)


def test_large_logits_do_not_overflow(tmp_path):
    feeds = _feeds(SHAPE, scale=200.0)
    _, got, _ = convert_and_compare(tmp_path, _net(SHAPE, "softmax_param { axis: 2 }"),
                                    feeds=feeds)  # fmt: skip
    assert np.isfinite(got["prob"]).all()
    np.testing.assert_allclose(got["prob"], _caffe_softmax(feeds["data"], 2), atol=1e-6)


def test_in_place_softmax_after_relu(tmp_path):
    net = (
        'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'
        'layer { name: "relu" type: "ReLU" bottom: "data" top: "x" }\n'
        'layer { name: "prob" type: "Softmax" bottom: "x" top: "x" softmax_param { axis: -1 } }'
    )
    feeds = _feeds(SHAPE)
    _, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    assert list(got) == ["x"]
    ref = _caffe_softmax(np.maximum(feeds["data"], 0), 3)
    np.testing.assert_allclose(got["x"], ref, atol=1e-6)


@pytest.mark.parametrize("axis", [4, -5])
def test_axis_out_of_range_is_refused(tmp_path, axis):
    expect_error(tmp_path, _net(SHAPE, f"softmax_param {{ axis: {axis} }}"), None, "prob",
                 "(Softmax)", f"softmax axis {axis} is out of range for a 4-D input")  # fmt: skip


@pytest.mark.parametrize("opset", [13, 17, max_opset()])
@pytest.mark.parametrize("axis", [1, 2, -1])
def test_opsets(tmp_path, opset, axis):
    feeds = _feeds(SHAPE)
    _, got, _ = convert_and_compare(
        tmp_path, _net(SHAPE, f"softmax_param {{ axis: {axis} }}"), feeds=feeds, opset=opset
    )
    np.testing.assert_allclose(got["prob"], _caffe_softmax(feeds["data"], axis), atol=1e-6)
