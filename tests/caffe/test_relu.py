"""ReLU (negative_slope) and PReLU (converters/caffe/layers/relu.py).

Compared with OpenCV DNN at atol 1e-5 and with Caffe's forward in numpy
(``relu_layer.cpp``: ``max(x, 0) + slope * min(x, 0)``; ``prelu_layer.cpp``: the same with one
slope per channel, or one for all with ``channel_shared``).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types

SHAPE = (2, 3, 4, 5)


def _input(shape=SHAPE) -> str:
    return f'input: "data"\ninput_shape {{ {" ".join(f"dim: {d}" for d in shape)} }}\n'


def _feeds(shape=SHAPE, seed: int = 0) -> dict[str, np.ndarray]:
    return {"data": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def _leaky(x, slope):
    return np.maximum(x, 0) + slope * np.minimum(x, 0)


@pytest.mark.parametrize(
    ("param", "slope", "ops"),
    [("", 0.0, ["Relu"]), ("relu_param { negative_slope: 0.1 }", 0.1, ["LeakyRelu"]),
     ("relu_param { negative_slope: -0.5 }", -0.5, ["LeakyRelu"]),
     ("relu_param { negative_slope: 0 }", 0.0, ["Relu"])],
    ids=["plain", "slope-0.1", "slope-negative", "slope-explicit-0"],
)  # fmt: skip
def test_relu(tmp_path, param, slope, ops):
    net = _input() + f'layer {{ name: "relu" type: "ReLU" bottom: "data" top: "out" {param} }}'
    feeds = _feeds()
    model, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    np.testing.assert_allclose(got["out"], _leaky(feeds["data"], np.float32(slope)), atol=1e-7)
    assert op_types(model) == ops
    if slope:
        assert model.graph.node[0].attribute[0].f == pytest.approx(slope)


def _prelu_net(shape, param: str = "") -> str:
    return _input(shape) + (
        f'layer {{ name: "prelu" type: "PReLU" bottom: "data" top: "out" {param} }}'
    )


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 6), (1, 4, 7)], ids=["4d", "2d", "3d"])
def test_prelu_per_channel(tmp_path, shape):
    slope = np.array([0.25, -0.5, 2.0, 0.0, 1.5, 0.1][: shape[1]], np.float32)
    feeds = _feeds(shape)
    model, got, _ = convert_and_compare(tmp_path, _prelu_net(shape), {"prelu": [slope]},
                                        feeds=feeds)  # fmt: skip
    bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(got["out"], _leaky(feeds["data"], slope.reshape(bshape)), atol=1e-7)
    assert op_types(model) == ["PRelu"]
    # (C, 1, ...) so that onnxruntime broadcasts over channels, not over the last axis.
    assert list(model.graph.initializer[0].dims) == [shape[1]] + [1] * (len(shape) - 2)


def test_prelu_channel_shared(tmp_path):
    # Caffe stores the shared slope as a 0-d blob, which OpenCV cannot read: real Caffe only.
    feeds = _feeds()
    net = _prelu_net(SHAPE, "prelu_param { channel_shared: true }")
    model, got, _ = convert_and_compare(
        tmp_path, net, {"prelu": [np.array(0.3, np.float32)]}, feeds=feeds, opencv=False
    )
    np.testing.assert_allclose(got["out"], _leaky(feeds["data"], np.float32(0.3)), atol=1e-7)
    assert list(model.graph.initializer[0].dims) in ([], [1])  # a scalar slope either way


def test_prelu_channel_shared_1d_blob(tmp_path):
    # The (1,) blob OpenCV reads (real Caffe refuses it: "shape mismatch"); accepted as well.
    feeds = _feeds()
    net = _prelu_net(SHAPE, "prelu_param { channel_shared: true }")
    model, got, _ = convert_and_compare(
        tmp_path, net, {"prelu": [np.array([0.3], np.float32)]}, feeds=feeds, caffe=False
    )
    np.testing.assert_allclose(got["out"], _leaky(feeds["data"], np.float32(0.3)), atol=1e-7)
    assert list(model.graph.initializer[0].dims) == [1]


def test_prelu_filler_is_not_the_weight(tmp_path):
    # The filler only initialises training; the stored blob is what the model computes with.
    slope = np.array([0.9, -0.2, 0.05], np.float32)
    net = _prelu_net(SHAPE, "prelu_param { filler { type: 'constant' value: 0.25 } }")
    feeds = _feeds()
    _, got, _ = convert_and_compare(tmp_path, net, {"prelu": [slope]}, feeds=feeds)
    np.testing.assert_allclose(got["out"], _leaky(feeds["data"], slope.reshape(1, 3, 1, 1)),
                               atol=1e-7)  # fmt: skip


def test_in_place_chain_conv_relu_prelu(tmp_path):
    """conv -> ReLU (slope, in place) -> PReLU (in place): each write is its own SSA value."""
    net = _input((1, 2, 6, 6)) + (
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        "convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }\n"
        'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" '
        "relu_param { negative_slope: 0.2 } }\n"
        'layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }\n'
    )
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    slope = np.array([0.5, -1.0, 3.0], np.float32)
    feeds = _feeds((1, 2, 6, 6))
    model, got, _ = convert_and_compare(
        tmp_path, net, {"conv": [w, b], "prelu": [slope]}, feeds=feeds
    )
    assert op_types(model) == ["Conv", "LeakyRelu", "PRelu"]
    assert [n.output[0] for n in model.graph.node] == ["conv@conv", "conv@relu", "conv"]
    assert list(got) == ["conv"]
    # numpy: 3x3 "same" convolution, then both slopes in sequence.
    xp = np.pad(feeds["data"][0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    conv = sum(
        np.einsum("chw,oc->ohw", xp[:, i : i + 6, j : j + 6], w[:, :, i, j])
        for i in range(3)
        for j in range(3)
    ) + b.reshape(3, 1, 1)
    want = _leaky(_leaky(conv, 0.2), slope.reshape(3, 1, 1))
    np.testing.assert_allclose(got["conv"][0], want, atol=1e-5)
    assert (conv < 0).any() and (conv > 0).any()


def test_prelu_wrong_slope_count_names_the_layer(tmp_path):
    expect_error(tmp_path, _prelu_net(SHAPE), {"prelu": [np.ones(4, np.float32)]}, "prelu",
                 "(PReLU)", "weight blob 0 (slope) has 4 values", "expected 3")  # fmt: skip


def test_prelu_without_blob_names_the_layer(tmp_path):
    expect_error(tmp_path, _prelu_net(SHAPE), {}, "prelu", "(PReLU)", "missing weight blob 0")


@pytest.mark.parametrize("opset", [13, max_opset()])
def test_opsets(tmp_path, opset):
    net = _input() + (
        'layer { name: "r" type: "ReLU" bottom: "data" top: "a" relu_param { negative_slope: 0.1 } }\n'
        'layer { name: "p" type: "PReLU" bottom: "a" top: "a" }'
    )
    slope = np.array([0.3, 0.6, -0.2], np.float32)
    convert_and_compare(tmp_path, net, {"p": [slope]}, opset=opset)
