"""Crop (converters/caffe/layers/crop.py) against OpenCV DNN, atol 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types

NET = """
input: "data"
input_shape {{ dim: 2 dim: 5 dim: 7 dim: 8 }}
input: "ref"
input_shape {{ dim: {ref} }}
layer {{ name: "crop" type: "Crop" bottom: "data" bottom: "ref" top: "crop" {param} }}
"""


@pytest.mark.parametrize(
    ("ref", "param", "index"),
    [
        ((2, 5, 4, 6), "", np.s_[:, :, 0:4, 0:6]),
        ((2, 5, 4, 6), "crop_param { offset: 2 }", np.s_[:, :, 2:6, 2:8]),
        ((2, 5, 4, 6), "crop_param { offset: 3 offset: 1 }", np.s_[:, :, 3:7, 1:7]),
        (
            (2, 3, 4, 6),
            "crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }",
            np.s_[:, 1:4, 2:6, 0:6],
        ),
        ((2, 3, 4, 6), "crop_param { axis: 1 offset: 1 }", np.s_[:, 1:4, 1:5, 1:7]),
        ((9, 9, 7, 3), "crop_param { axis: -1 offset: 5 }", np.s_[:, :, :, 5:8]),
        ((2, 5, 7, 8), "crop_param { offset: 0 }", np.s_[:, :, :, :]),
    ],
    ids=[
        "default",
        "one-offset",
        "per-dim",
        "axis1-per-dim",
        "axis1-one-offset",
        "axis-neg",
        "no-op",
    ],
)
def test_crop(tmp_path, ref, param, index):
    net = NET.format(ref=" dim: ".join(map(str, ref)), param=param)
    rng = np.random.default_rng(3)
    feeds = {
        "data": rng.standard_normal((2, 5, 7, 8)).astype(np.float32),
        "ref": rng.standard_normal(ref).astype(np.float32),
    }
    model, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    np.testing.assert_array_equal(got["crop"], feeds["data"][index])
    assert op_types(model) == ["Slice"]
    assert "ref" not in model.graph.node[0].input  # the reference only lends its shape


@pytest.mark.parametrize(
    ("ref", "param", "fragments"),
    [
        (
            (2, 5, 4, 6),
            "crop_param { offset: 1 offset: 2 offset: 3 }",
            ["3 offsets given; expected 1 or 2"],
        ),
        ((2, 5, 4, 6), "crop_param { offset: 4 }", ["dim 2: offset 4 + size 4 exceeds", "7"]),
        ((2, 5, 4, 9), "", ["dim 3: offset 0 + size 9 exceeds the bottom's 8"]),
        ((2, 5, 4), "", ["different ranks"]),
        ((2, 5, 4, 6), "crop_param { axis: 4 }", ["crop_param.axis 4 is out of range"]),
    ],
    ids=["offset-count", "offset-too-big", "ref-too-big", "rank", "axis"],
)
def test_errors(tmp_path, ref, param, fragments):
    net = NET.format(ref=" dim: ".join(map(str, ref)), param=param).replace(
        'name: "crop"', 'name: "bad"'
    )
    expect_error(tmp_path, net, None, "bad", *fragments)


def test_one_bottom_is_an_error(tmp_path):
    net = 'input: "data"\ninput_shape { dim: 1 dim: 2 dim: 3 dim: 4 }\n'
    net += 'layer { name: "bad" type: "Crop" bottom: "data" top: "x" }'
    expect_error(tmp_path, net, None, "bad", "expected 2 bottom blobs (data, reference), got 1")
