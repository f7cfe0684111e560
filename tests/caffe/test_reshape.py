"""Flatten and Reshape (converters/caffe/layers/reshape.py) against OpenCV DNN, atol 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

INPUT = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'


def _net(layer_type: str, param: str) -> str:
    # A ReLU after the reshape so the result feeds a real consumer too.
    return INPUT + (
        f'layer {{ name: "rs" type: "{layer_type}" bottom: "data" top: "rs" {param} }}\n'
        'layer { name: "relu" type: "ReLU" bottom: "rs" top: "rs" }'
    )


@pytest.mark.parametrize(
    ("param", "shape"),
    [
        ("", (2, 60)),
        ("flatten_param { axis: 1 end_axis: 2 }", (2, 12, 5)),
        ("flatten_param { axis: 2 }", (2, 3, 20)),
        ("flatten_param { axis: 0 end_axis: -2 }", (24, 5)),
        ("flatten_param { axis: -3 end_axis: -3 }", (2, 3, 4, 5)),
    ],
    ids=["default", "end_axis2", "axis2", "end_axis-neg", "single-dim"],
)
def test_flatten(tmp_path, param, shape):
    model, got, _ = convert_and_compare(tmp_path, _net("Flatten", param))
    assert got["rs"].shape == shape
    assert op_types(model) == ["Reshape", "Relu"]


@pytest.mark.parametrize(
    ("param", "shape"),
    [
        ("reshape_param { shape { dim: 0 dim: -1 } }", (2, 60)),
        ("reshape_param { shape { dim: 0 dim: 0 dim: -1 dim: 2 } }", (2, 3, 10, 2)),
        ("reshape_param { shape { dim: -1 dim: 6 dim: 0 } }", (5, 6, 4)),
        ("reshape_param { shape { dim: 6 dim: 2 dim: 10 } }", (6, 2, 10)),
        ("reshape_param { axis: 1 num_axes: 2 shape { dim: -1 } }", (2, 12, 5)),
        ("reshape_param { axis: 2 shape { dim: 0 dim: 1 dim: -1 } }", (2, 3, 4, 1, 5)),
    ],
    ids=["0,-1", "0,0,-1,2", "-1,6,0", "explicit", "axis1-num_axes2", "axis2-copy"],
)
def test_reshape(tmp_path, param, shape):
    data = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    model, got, _ = convert_and_compare(tmp_path, _net("Reshape", param), feeds={"data": data})
    assert got["rs"].shape == shape
    # Caffe reshapes never move data: the values are the input's, in C order.
    np.testing.assert_array_equal(got["rs"].ravel(), np.maximum(data, 0).ravel())
    assert op_types(model) == ["Reshape", "Relu"]


@pytest.mark.parametrize(
    ("layer_type", "param", "shape"),
    [
        ("Flatten", "flatten_param { axis: 0 }", (120,)),
        ("Reshape", "reshape_param { axis: -1 shape { dim: 1 } }", (2, 3, 4, 5, 1)),
        ("Reshape", "reshape_param { axis: 1 num_axes: 0 shape { dim: 1 } }", (2, 1, 3, 4, 5)),
        (
            "Reshape",
            "reshape_param { axis: -3 num_axes: 1 shape { dim: 2 dim: -1 } }",
            (2, 3, 2, 2, 5),
        ),
        (
            "Reshape",
            "reshape_param { axis: -2 num_axes: -1 shape { dim: 0 dim: 1 } }",
            (2, 3, 4, 5, 1),
        ),
    ],
    ids=["flatten-1d", "append-axis", "insert-axis", "axis-neg", "axis-neg-copy"],
)
def test_caffe_only_forms(tmp_path, layer_type, param, shape):
    """numpy reference (the data in C order under Caffe's shape): OpenCV 4.14 returns a 1-D
    Flatten result as (120, 1), and fails on a negative Reshape axis (Caffe: counted from one
    past the end) and on ``num_axes: 0`` (an inserted axis) with 'normalize_axis_range'."""
    _, got, feeds = convert_and_run(tmp_path, _net(layer_type, param))
    np.testing.assert_array_equal(got["rs"], np.maximum(feeds["data"], 0).reshape(shape))


@pytest.mark.parametrize(
    ("layer_type", "param", "fragments"),
    [
        ("Flatten", "flatten_param { axis: 2 end_axis: 1 }", ["end_axis 1 comes before axis 2"]),
        ("Flatten", "flatten_param { axis: 4 }", ["flatten_param.axis 4 is out of range"]),
        ("Reshape", "reshape_param { shape { dim: -1 dim: -1 } }", ["more than one -1"]),
        (
            "Reshape",
            "reshape_param { shape { dim: 7 dim: -1 } }",
            ["120 elements", "not a multiple of 7"],
        ),
        ("Reshape", "reshape_param { shape { dim: 2 dim: 3 } }", ["gives 6 elements", "has 120"]),
        (
            "Reshape",
            "reshape_param { axis: 3 shape { dim: 0 dim: 0 } }",
            ["shape.dim[1] is 0 but the bottom has no dim 4"],
        ),
        ("Reshape", "reshape_param { shape { dim: -2 dim: -60 } }", ["shape.dim[0] is -2"]),
        ("Reshape", "reshape_param { axis: 5 shape { dim: 1 } }", ["reshape_param.axis 5"]),
        (
            "Reshape",
            "reshape_param { axis: 3 num_axes: 2 shape { dim: 1 } }",
            ["num_axes 2 exceeds"],
        ),
    ],
    ids=[
        "flatten-order",
        "flatten-axis",
        "two-minus-one",
        "indivisible",
        "count",
        "copy-missing",
        "negative-dim",
        "axis",
        "num_axes",
    ],
)
def test_errors(tmp_path, layer_type, param, fragments):
    net = INPUT + f'layer {{ name: "bad" type: "{layer_type}" bottom: "data" top: "x" {param} }}'
    expect_error(tmp_path, net, None, "bad", *fragments)
