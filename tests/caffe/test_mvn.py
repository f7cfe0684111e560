"""MVN (converters/caffe/layers/mvn.py).

Caffe adds ``eps`` to the standard deviation: ``(x - m) / (sqrt(var) + eps)``. OpenCV adds it to
the variance, ``(x - m) / sqrt(var + eps)`` (measured: with eps 0.5 the two differ by 0.37), so
nets with a non-negligible eps are compared with real Caffe only; with the default eps (1e-9)
both formulas agree in float32 and both references run.
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types


def _net(shape, param: str = "") -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (
        f'input: "data"\ninput_shape {{ {dims} }}\n'
        f'layer {{ name: "mvn" type: "MVN" bottom: "data" top: "out" {param} }}'
    )


def _feeds(shape, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # A per-channel offset and spread, so that mean and variance both matter.
    x = rng.standard_normal(shape) * 3 + rng.standard_normal(shape[:2] + (1,) * (len(shape) - 2))
    return {"data": x.astype(np.float32)}


@pytest.mark.parametrize(
    "param",
    [
        "",
        "mvn_param { across_channels: true }",
        "mvn_param { normalize_variance: false }",
        "mvn_param { normalize_variance: false across_channels: true }",
        "mvn_param { eps: 1e-6 }",
    ],
    ids=["default", "across", "mean-only", "mean-only-across", "eps-1e-6"],
)
def test_against_caffe_and_opencv(tmp_path, param):
    shape = (2, 3, 4, 5)
    feeds = _feeds(shape)
    model, _, _ = convert_and_compare(tmp_path, _net(shape, param), feeds=feeds)
    if "false" in param:
        assert op_types(model) == ["ReduceMean", "Sub"]


@pytest.mark.parametrize("across", [False, True])
def test_large_eps_vs_caffe(tmp_path, across):
    shape = (2, 3, 4, 5)
    param = f"mvn_param {{ eps: 0.5 across_channels: {str(across).lower()} }}"
    convert_and_compare(tmp_path, _net(shape, param), feeds=_feeds(shape), opencv=False)


@pytest.mark.parametrize(
    ("shape", "param", "out_shape"),
    [
        ((2, 6), "mvn_param { across_channels: true }", (2, 6, 1, 1)),
        ((2, 6), "", (2, 6, 1, 1)),  # every row is one value: all zeros, as in Caffe
        ((2, 3, 7), "", (2, 3, 7, 1)),
    ],
    ids=["2d-across", "2d-per-channel", "3d"],
)
def test_lower_rank_inputs_give_4d_tops(tmp_path, shape, param, out_shape):
    # Caffe reshapes the top as (num, channels, height, width).
    _, got, _ = convert_and_compare(tmp_path, _net(shape, param), feeds=_feeds(shape), opencv=False)
    assert got["out"].shape == out_shape


def test_5d_input_is_refused(tmp_path):
    expect_error(tmp_path, _net((1, 2, 3, 4, 5)), None, "mvn", "(MVN)",
                 "input must be 2-D to 4-D", "got shape [1, 2, 3, 4, 5]")  # fmt: skip


@pytest.mark.parametrize("opset", [13, 18, max_opset()])
def test_opsets(tmp_path, opset):
    # ReduceMean takes axes as an attribute before opset 18 and as an input from 18 on.
    shape = (2, 3, 4, 5)
    convert_and_compare(tmp_path, _net(shape), feeds=_feeds(shape), opset=opset)


def test_legacy_v1_layer(tmp_path):
    net = (
        'input: "data"\ninput_dim: 2\ninput_dim: 3\ninput_dim: 4\ninput_dim: 5\n'
        'layers { name: "mvn" type: MVN bottom: "data" top: "out" '
        "mvn_param { across_channels: true } }"
    )
    convert_and_compare(tmp_path, net, feeds=_feeds((2, 3, 4, 5)))
