"""Permute and ShuffleChannel (converters/caffe/layers/permute.py) against OpenCV DNN."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

INPUT = 'input: "data"\ninput_shape { dim: 2 dim: 6 dim: 3 dim: 4 }\n'


def _feeds(seed: int = 0) -> dict[str, np.ndarray]:
    return {"data": np.random.default_rng(seed).standard_normal((2, 6, 3, 4)).astype(np.float32)}


@pytest.mark.parametrize(
    ("orders", "perm"),
    [
        ([0, 2, 3, 1], [0, 2, 3, 1]),  # SSD's NCHW -> NHWC before Flatten
        ([0, 3, 1, 2], [0, 3, 1, 2]),
        ([1, 0, 3, 2], [1, 0, 3, 2]),
    ],
    ids=["nhwc", "0312", "swap-batch"],
)
def test_permute(tmp_path, orders, perm):
    order = " ".join(f"order: {o}" for o in orders)
    net = INPUT + (
        f'layer {{ name: "p" type: "Permute" bottom: "data" top: "p" permute_param {{ {order} }} }}'
    )
    feeds = _feeds()
    model, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    np.testing.assert_array_equal(got["p"], feeds["data"].transpose(perm))
    assert op_types(model) == ["Transpose"]


@pytest.mark.parametrize(
    ("orders", "perm"), [([0, 2], [0, 2, 1, 3]), ([3], [3, 0, 1, 2]), ([0, 3, 2], [0, 3, 2, 1])]
)
def test_permute_partial_order(tmp_path, orders, perm):
    """numpy reference: the SSD fork appends the axes ``order`` leaves out, in increasing order
    (PermuteLayer::LayerSetUp); OpenCV 4.14 instead requires a full order and fails."""
    order = " ".join(f"order: {o}" for o in orders)
    net = INPUT + (
        f'layer {{ name: "p" type: "Permute" bottom: "data" top: "p" permute_param {{ {order} }} }}'
    )
    _, got, feeds = convert_and_run(tmp_path, net)
    np.testing.assert_array_equal(got["p"], feeds["data"].transpose(perm))


def test_permute_identity_order_adds_no_node(tmp_path):
    net = (
        INPUT
        + """
layer { name: "p" type: "Permute" bottom: "data" top: "p"
        permute_param { order: 0 order: 1 order: 2 order: 3 } }
layer { name: "relu" type: "ReLU" bottom: "p" top: "r" }
"""
    )
    model, _, _ = convert_and_compare(tmp_path, net)
    assert op_types(model) == ["Relu"]


def _shuffle_reference(x: np.ndarray, group: int) -> np.ndarray:
    # Caffe fork's loop: output channel j*group + i takes input channel i*(C/group) + j.
    c = x.shape[1]
    y = np.empty_like(x)
    for i in range(group):
        for j in range(c // group):
            y[:, j * group + i] = x[:, i * (c // group) + j]
    return y


@pytest.mark.parametrize("group", [1, 2, 3, 6])
def test_shuffle_channel(tmp_path, group):
    net = INPUT + (
        'layer { name: "sh" type: "ShuffleChannel" bottom: "data" top: "sh" '
        f"shuffle_channel_param {{ group: {group} }} }}"
    )
    feeds = _feeds(group)
    model, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    np.testing.assert_array_equal(got["sh"], _shuffle_reference(feeds["data"], group))
    # group 1 and group C leave every channel in place: an alias (Identity as graph output).
    moves = ["Reshape", "Transpose", "Reshape"]
    assert op_types(model) == (["Identity"] if group in (1, 6) else moves)


def test_shuffle_channel_in_place(tmp_path):
    net = (
        INPUT
        + """
layer { name: "relu0" type: "ReLU" bottom: "data" top: "sh" relu_param { negative_slope: 0.5 } }
layer { name: "sh" type: "ShuffleChannel" bottom: "sh" top: "sh" shuffle_channel_param { group: 2 } }
layer { name: "relu" type: "ReLU" bottom: "sh" top: "sh" }
"""
    )
    feeds = _feeds(7)
    _, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    x = np.where(feeds["data"] > 0, feeds["data"], feeds["data"] * np.float32(0.5))
    np.testing.assert_array_equal(got["sh"], np.maximum(_shuffle_reference(x, 2), 0))


def test_shuffle_channel_2d(tmp_path):
    """numpy reference: OpenCV 4.14's ShuffleChannel accepts only 4-D bottoms; the fork's
    layer works on any (N, C, ...) blob (it loops over count(2)-sized channel planes)."""
    net = """
input: "data"
input_shape { dim: 3 dim: 8 }
layer { name: "sh" type: "ShuffleChannel" bottom: "data" top: "sh"
        shuffle_channel_param { group: 4 } }
"""
    _, got, feeds = convert_and_run(tmp_path, net)
    np.testing.assert_array_equal(got["sh"], _shuffle_reference(feeds["data"], 4))


@pytest.mark.parametrize(
    ("layer", "fragments"),
    [
        ('type: "Permute" permute_param { order: 0 order: 4 }', ["names axis 4", "has 4 dims"]),
        ('type: "Permute" permute_param { order: 0 order: 2 order: 2 }', ["repeats an axis"]),
        (
            'type: "ShuffleChannel" shuffle_channel_param { group: 4 }',
            ["group 4 must be positive and divide the 6 channels"],
        ),
        ('type: "ShuffleChannel" shuffle_channel_param { group: 0 }', ["group 0"]),
    ],
    ids=["order-range", "order-dup", "group-divides", "group-zero"],
)
def test_errors(tmp_path, layer, fragments):
    net = INPUT + f'layer {{ name: "bad" bottom: "data" top: "x" {layer} }}'
    expect_error(tmp_path, net, None, "bad", *fragments)
