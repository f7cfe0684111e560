"""Activations (converters/caffe/layers/activation.py).

ReLU6, ELU, Sigmoid, TanH, AbsVal and BNLL are compared with real Caffe and OpenCV DNN (atol
1e-5). OpenCV 4.x has no Caffe ``Clip`` or ``Threshold`` layer ("Can't create layer"):
Threshold is compared with real Caffe only, Clip (which this Caffe build lacks too) with numpy
(``clip_layer.cpp``: ``max(min, min(x, max))``).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

HEADER = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'


def _net(type_name: str, param: str = "", bottom: str = "data", top: str = "out") -> str:
    return HEADER + (
        f'layer {{ name: "act" type: "{type_name}" bottom: "{bottom}" top: "{top}" {param} }}'
    )


def _wide(shape=(2, 3, 4, 5), scale=8.0, seed=1) -> dict[str, np.ndarray]:
    """Inputs spread well beyond [-6, 6] so that clipping and saturation are exercised."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * np.float32(scale)
    return {"data": x}


@pytest.mark.parametrize(
    ("type_name", "param", "ops"),
    [
        ("ReLU6", "", ["Clip"]),
        ("ELU", "", ["Elu"]),
        ("ELU", "elu_param { alpha: 0.3 }", ["Elu"]),
        ("Sigmoid", "", ["Sigmoid"]),
        ("TanH", "", ["Tanh"]),
        ("AbsVal", "", ["Abs"]),
        ("BNLL", "", ["Softplus"]),
    ],
    ids=["relu6", "elu", "elu-alpha", "sigmoid", "tanh", "absval", "bnll"],
)
def test_against_opencv(tmp_path, type_name, param, ops):
    model, got, _ = convert_and_compare(tmp_path, _net(type_name, param), feeds=_wide())
    assert op_types(model) == ops
    assert got["out"].shape == (2, 3, 4, 5)


def test_relu6_saturates_both_ends(tmp_path):
    _, got, _ = convert_and_compare(tmp_path, _net("ReLU6"), feeds=_wide())
    assert got["out"].min() == 0.0 and got["out"].max() == 6.0


def test_in_place_chain(tmp_path):
    # ReLU6 then TanH written in place on the input blob's successor: SSA renaming.
    net = HEADER + (
        'layer { name: "a" type: "AbsVal" bottom: "data" top: "x" }\n'
        'layer { name: "r6" type: "ReLU6" bottom: "x" top: "x" }\n'
        'layer { name: "th" type: "TanH" bottom: "x" top: "x" }'
    )
    model, got, _ = convert_and_compare(tmp_path, net, feeds=_wide())
    assert op_types(model) == ["Abs", "Clip", "Tanh"]
    assert list(got) == ["x"]


def test_bnll_is_overflow_free(tmp_path):
    # Caffe's split formula never overflows; 1e4 would make a naive log(1 + exp(x)) inf.
    x = np.array([-1e4, -100, -20, -1, 0, 1e-8, 1, 20, 88, 89, 100, 1e4], dtype=np.float32)
    feeds = {"data": np.resize(x, (2, 3, 4, 5)).astype(np.float32)}
    _, got, _ = convert_and_compare(tmp_path, _net("BNLL"), feeds=feeds)
    x64 = feeds["data"].astype(np.float64)
    ref = np.where(
        x64 > 0, x64 + np.log1p(np.exp(-np.abs(x64))), np.log1p(np.exp(np.minimum(x64, 0)))
    )
    np.testing.assert_allclose(got["out"], ref, rtol=2e-7, atol=1e-7)


@pytest.mark.parametrize(("lo", "hi"), [(-0.5, 0.7), (0.0, 6.0), (-2.0, -2.0)])
def test_clip_vs_caffe_reference(tmp_path, lo, hi):
    feeds = _wide(scale=2.0)
    model, got, _ = convert_and_run(
        tmp_path, _net("Clip", f"clip_param {{ min: {lo} max: {hi} }}"), feeds=feeds
    )
    ref = np.maximum(np.float32(lo), np.minimum(feeds["data"], np.float32(hi)))
    np.testing.assert_array_equal(got["out"], ref)
    assert op_types(model) == ["Clip"]


@pytest.mark.parametrize("threshold", [0.0, 0.25, -1.5])
def test_threshold_vs_caffe(tmp_path, threshold):
    feeds = _wide(scale=2.0)
    feeds["data"].flat[:3] = np.float32(threshold)  # equal values must give 0 (strictly greater)
    param = f"threshold_param {{ threshold: {threshold} }}"
    model, got, _ = convert_and_compare(
        tmp_path, _net("Threshold", param), feeds=feeds, atol=0, opencv=False
    )
    assert got["out"].dtype == np.float32 and got["out"].flat[0] == 0.0
    assert op_types(model) == ["Greater", "Cast"]


def test_clip_min_above_max_is_refused(tmp_path):
    msg = expect_error(tmp_path, _net("Clip", "clip_param { min: 2 max: 1 }"), None, "act",
                       "clip_param.min (2) must not exceed clip_param.max (1)")  # fmt: skip
    assert "(Clip)" in msg


def test_clip_without_param_is_refused(tmp_path):
    expect_error(tmp_path, _net("Clip"), None, "act", "needs clip_param")


def test_two_bottoms_are_refused(tmp_path):
    net = HEADER + 'layer { name: "act" type: "Sigmoid" bottom: "data" bottom: "data" top: "o" }'
    expect_error(tmp_path, net, None, "act", "expected 1 bottom and 1 top, got 2 and 1")


def test_non_finite_param_is_refused(tmp_path):
    expect_error(tmp_path, _net("ELU", "elu_param { alpha: inf }"), None, "act",
                 "elu_param.alpha must be a finite number, got inf")  # fmt: skip


@pytest.mark.parametrize("opset", [13, max_opset()])
def test_opsets(tmp_path, opset):
    net = HEADER + (
        'layer { name: "r6" type: "ReLU6" bottom: "data" top: "a" }\n'
        'layer { name: "elu" type: "ELU" bottom: "a" top: "b" elu_param { alpha: 0.5 } }\n'
        'layer { name: "bnll" type: "BNLL" bottom: "b" top: "c" }'
    )
    convert_and_compare(tmp_path, net, feeds=_wide(), opset=opset)
