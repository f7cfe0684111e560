"""LRN, both norm regions (converters/caffe/layers/lrn.py).

Compared with real Caffe, and with OpenCV DNN where it follows Caffe. OpenCV ignores
``lrn_param.k`` for ACROSS_CHANNELS (measured: k = 2 gives OpenCV's k = 1 result), so k != 1 is
compared with real Caffe only. For WITHIN_CHANNEL both Caffe and OpenCV
use ``1 + alpha * avg(x^2)`` (k unused), so that case includes a k != 1 net against OpenCV.
Inputs are scaled so that the normalization term is far from negligible.
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types


def _net(shape, param: str) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (
        f'input: "data"\ninput_shape {{ {dims} }}\n'
        f'layer {{ name: "norm" type: "LRN" bottom: "data" top: "norm" lrn_param {{ {param} }} }}'
    )


def _feeds(shape, scale: float, seed: int = 0) -> dict[str, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    return {"data": x.astype(np.float32)}


def test_alexnet_lrn(tmp_path):
    # bvlc_alexnet norm1: local_size 5, alpha 1e-4, beta 0.75 after conv1 + ReLU (96 channels).
    # Post-ReLU activations of magnitude ~100 make alpha/n * sum(x^2) of order 1.
    shape = (1, 96, 9, 9)
    feeds = {"data": np.abs(_feeds(shape, 100.0)["data"])}
    model, got, _ = convert_and_compare(
        tmp_path,
        _net(shape, "local_size: 5 alpha: 0.0001 beta: 0.75"),
        feeds=feeds,
        atol=1e-5,
        rtol=1e-6,
    )
    assert op_types(model) == ["LRN"]
    attrs = {a.name: a for a in model.graph.node[0].attribute}
    assert attrs["size"].i == 5 and attrs["bias"].f == 1.0
    assert np.abs(got["norm"] / feeds["data"] - 1).max() > 0.1  # the normalization mattered


@pytest.mark.parametrize(
    ("param", "scale"),
    [
        ("local_size: 3 alpha: 0.5 beta: 0.75", 2.0),
        ("local_size: 1 alpha: 1 beta: 0.5", 2.0),
        ("local_size: 7 alpha: 0.2 beta: 1.5", 1.0),  # window wider than the 5 channels
    ],
    ids=["n3", "n1", "n7-wide"],
)
def test_across_channels_against_opencv(tmp_path, param, scale):
    shape = (2, 5, 4, 6)
    convert_and_compare(tmp_path, _net(shape, param), feeds=_feeds(shape, scale))


@pytest.mark.parametrize("k", [2.0, 0.5])
def test_across_channels_k_vs_caffe(tmp_path, k):
    shape = (2, 7, 4, 5)
    param = f"local_size: 5 alpha: 0.3 beta: 0.75 k: {k}"
    model, _, _ = convert_and_compare(
        tmp_path, _net(shape, param), feeds=_feeds(shape, 2.0), atol=1e-5, rtol=1e-6, opencv=False
    )
    assert {a.name: a.f for a in model.graph.node[0].attribute}["bias"] == k


@pytest.mark.parametrize(
    ("param", "shape"),
    [
        ("local_size: 3 alpha: 0.5 beta: 0.75", (2, 3, 6, 7)),
        ("local_size: 5 alpha: 2 beta: 0.75 k: 2", (1, 2, 5, 5)),  # k is unused here
        ("local_size: 7 alpha: 1 beta: 1.2", (1, 2, 3, 4)),  # window larger than the image
        ("local_size: 1 alpha: 0.5 beta: 0.5", (1, 2, 3, 3)),
    ],
    ids=["n3", "n5-k2", "n7-bigger-than-image", "n1"],
)
def test_within_channel_against_opencv(tmp_path, param, shape):
    model, _, _ = convert_and_compare(
        tmp_path, _net(shape, f"norm_region: WITHIN_CHANNEL {param}"), feeds=_feeds(shape, 2.0)
    )
    assert op_types(model) == ["Mul", "AveragePool", "Mul", "Add", "Pow", "Mul"]


def test_within_channel_border_divisor(tmp_path):
    # Caffe's AVE divisor is always n*n here: at a corner, the 3x3 window holds 4 real values
    # and 5 zero pads, and the sum is still divided by 9.
    shape = (1, 1, 3, 3)
    feeds = {"data": np.full(shape, 2.0, dtype=np.float32)}
    net = _net(shape, "norm_region: WITHIN_CHANNEL local_size: 3 alpha: 1 beta: 1")
    _, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    corner = 2.0 / (1 + 4 * 4.0 / 9)
    centre = 2.0 / (1 + 9 * 4.0 / 9)
    np.testing.assert_allclose(got["norm"][0, 0, 0, 0], corner, rtol=1e-6)
    np.testing.assert_allclose(got["norm"][0, 0, 1, 1], centre, rtol=1e-6)


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("local_size: 4", "lrn_param.local_size must be a positive odd number, got 4"),
        ("local_size: 0", "lrn_param.local_size must be a positive odd number, got 0"),
        ("beta: inf", "lrn_param.beta must be a finite number"),
    ],
    ids=["even", "zero", "inf-beta"],
)
def test_bad_params_are_refused(tmp_path, param, fragment):
    expect_error(tmp_path, _net((1, 3, 4, 4), param), None, "norm", "(LRN)", fragment)


def test_non_4d_input_is_refused(tmp_path):
    net = _net((2, 6), "local_size: 3")
    expect_error(tmp_path, net, None, "norm", "input must be 4-D (N, C, H, W), got shape [2, 6]")


@pytest.mark.parametrize("opset", [13, max_opset()])
def test_opsets(tmp_path, opset):
    shape = (1, 4, 5, 5)
    for region in ("ACROSS_CHANNELS", "WITHIN_CHANNEL"):
        (tmp_path / region).mkdir()
        net = _net(shape, f"norm_region: {region} local_size: 3 alpha: 0.5 beta: 0.75")
        convert_and_compare(tmp_path / region, net, feeds=_feeds(shape, 2.0), opset=opset)


def test_legacy_v1_layers(tmp_path):
    net = (
        'input: "data"\ninput_dim: 1\ninput_dim: 6\ninput_dim: 5\ninput_dim: 5\n'
        'layers { name: "norm" type: LRN bottom: "data" top: "norm" '
        "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 } }\n"
        'layers { name: "norm2" type: LRN bottom: "norm" top: "norm2" '
        "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }"
    )
    model, _, _ = convert_and_compare(tmp_path, net, feeds=_feeds((1, 6, 5, 5), 2.0))
    assert op_types(model)[0] == "LRN"
