"""Normalize, SSD fork (converters/caffe/layers/normalize.py).

Compared with real Caffe (which has SSD's Normalize) and OpenCV DNN, except that OpenCV cannot
run ``across_spatial: true`` with ``channel_shared: false`` (it then requires one scale per
(c, h, w) element and fails its ``scale.total() == numPlanes`` assertion) nor 2-D inputs: those
are compared with real Caffe only.
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types

SHAPE = (2, 6, 4, 5)


def _net(param: str, shape=SHAPE) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (
        f'input: "data"\ninput_shape {{ {dims} }}\n'
        f'layer {{ name: "norm" type: "Normalize" bottom: "data" top: "out" '
        f"norm_param {{ {param} }} }}"
    )


def _scale(shared: bool, channels=SHAPE[1]) -> np.ndarray:
    if shared:
        return np.array([20.0], dtype=np.float32)  # SSD's conv4_3_norm scale_filler value
    return np.linspace(0.5, 3.0, channels).astype(np.float32)


@pytest.mark.parametrize(
    ("param", "shared"),
    [
        ("", True),  # defaults: across_spatial, channel_shared, eps 1e-10
        ("across_spatial: false channel_shared: false", False),  # SSD300 conv4_3_norm
        ("across_spatial: false", True),
        ("across_spatial: false channel_shared: false eps: 0.5", False),
        ("eps: 0.5", True),
    ],
    ids=["defaults", "ssd-conv4_3", "per-pixel-shared", "per-pixel-eps", "across-eps"],
)
def test_against_caffe_and_opencv(tmp_path, param, shared):
    weights = {"norm": [_scale(shared)]}
    # A shared scale is a 0-d blob in Caffe, a (1,) blob for OpenCV (which cannot read 0-d
    # blobs; real Caffe refuses (1,) with "shape mismatch"): each reference gets its own.
    model, got, _ = convert_and_compare(tmp_path, _net(param), weights, rtol=1e-6, caffe=not shared)
    assert op_types(model) == ["ReduceSumSquare", "Add", "Sqrt", "Div", "Mul"]
    assert got["out"].shape == SHAPE
    if shared:
        weights = {"norm": [_scale(shared).reshape(())]}
        _, again, _ = convert_and_compare(
            tmp_path / "0d", _net(param), weights, rtol=1e-6, opencv=False
        )
        np.testing.assert_array_equal(again["out"], got["out"])


def test_conv4_3_norm_reference_values(tmp_path):
    # The per-pixel L2 norm of the output, divided by the channel scale, is 1.
    weights = {"norm": [np.full(SHAPE[1], 20.0, dtype=np.float32)]}
    net = _net("across_spatial: false channel_shared: false")
    _, got, _ = convert_and_compare(tmp_path, net, weights, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt((got["out"] ** 2).sum(1)), 20.0, rtol=1e-5)


@pytest.mark.parametrize("eps", [1e-10, 0.5])
def test_across_spatial_per_channel_scale_vs_caffe(tmp_path, eps):
    scale = _scale(False)
    net = _net(f"channel_shared: false eps: {eps}")
    convert_and_compare(tmp_path, net, {"norm": [scale]}, atol=1e-6, rtol=1e-6, opencv=False)


def test_2d_input(tmp_path):
    scale = _scale(False, channels=6)
    net = _net("across_spatial: false channel_shared: false", shape=(3, 6))
    convert_and_compare(tmp_path, net, {"norm": [scale]}, atol=1e-6, rtol=1e-6, opencv=False)


def test_scale_blob_of_wrong_size_is_refused(tmp_path):
    net = _net("channel_shared: false")
    expect_error(tmp_path, net, {"norm": [np.ones(4, np.float32)]}, "norm", "(Normalize)",
                 "weight blob 0 (scale, one per channel) has 4 values", "expected 6")  # fmt: skip


def test_missing_scale_blob_is_refused(tmp_path):
    expect_error(tmp_path, _net(""), {}, "norm", "(Normalize)", "missing weight blob 0")


def test_shared_scale_with_many_values_is_refused(tmp_path):
    expect_error(tmp_path, _net(""), {"norm": [np.ones(6, np.float32)]}, "norm",
                 "weight blob 0 (scale, channel_shared) has 6 values", "expected 1")  # fmt: skip


@pytest.mark.parametrize("opset", [13, 18, max_opset()])
def test_opsets(tmp_path, opset):
    # ReduceSumSquare takes axes as an attribute before opset 18 and as an input from 18 on.
    net = _net("across_spatial: false channel_shared: false")
    convert_and_compare(tmp_path, net, {"norm": [_scale(False)]}, rtol=1e-6, opset=opset)
