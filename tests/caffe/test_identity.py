"""Split, Dropout and Silence (converters/caffe/layers/identity.py) against OpenCV DNN."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

INPUT = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'


def test_split_aliases(tmp_path):
    # OpenCV only allocates Split tops that a later layer consumes, so all three are used here.
    net = (
        INPUT
        + """
layer { name: "sp" type: "Split" bottom: "data" top: "a" top: "b" top: "c" }
layer { name: "relu" type: "ReLU" bottom: "b" top: "rb" }
layer { name: "cat" type: "Concat" bottom: "c" bottom: "rb" bottom: "a" top: "cat" }
"""
    )
    model, _, _ = convert_and_compare(tmp_path, net)
    assert op_types(model) == ["Relu", "Concat"]
    relu, cat = model.graph.node
    assert relu.input[0] == "data" and list(cat.input) == ["data", "rb", "data"]  # no copies


def test_split_top_as_output(tmp_path):
    """numpy reference: a Split top that is a net output (OpenCV 4.14 fails on unconsumed
    Split tops: 'out_port < out.size()'). The alias gets an Identity named as the top."""
    net = (
        INPUT
        + """
layer { name: "sp" type: "Split" bottom: "data" top: "a" top: "b" }
layer { name: "relu" type: "ReLU" bottom: "b" top: "rb" }
"""
    )
    model, got, feeds = convert_and_run(tmp_path, net)
    assert [o.name for o in model.graph.output] == ["a", "rb"]
    assert op_types(model) == ["Relu", "Identity"]
    np.testing.assert_array_equal(got["a"], feeds["data"])
    np.testing.assert_array_equal(got["rb"], np.maximum(feeds["data"], 0))


@pytest.mark.parametrize(
    ("param", "factor"),
    [
        ("", 1.0),
        ("dropout_param { dropout_ratio: 0.3 }", 1.0),
        ("dropout_param { dropout_ratio: 0.3 scale_train: false }", 0.7),
        ("dropout_param { scale_train: true }", 1.0),
    ],
    ids=["default", "ratio", "scale_train-false", "scale_train-true"],
)
def test_dropout_in_place(tmp_path, param, factor):
    net = (
        INPUT
        + f"""
layer {{ name: "relu" type: "ReLU" bottom: "data" top: "r" }}
layer {{ name: "drop" type: "Dropout" bottom: "r" top: "r" {param} }}
"""
    )
    data = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    model, got, _ = convert_and_compare(tmp_path, net, feeds={"data": data})
    np.testing.assert_allclose(got["r"], np.maximum(data, 0) * np.float32(factor), atol=1e-6)
    assert ("Mul" in op_types(model)) == (factor != 1.0)


def test_silence(tmp_path):
    net = (
        INPUT
        + """
input: "aux"
input_shape { dim: 2 dim: 3 }
layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }
layer { name: "relu2" type: "ReLU" bottom: "data" top: "unused" }
layer { name: "mute" type: "Silence" bottom: "unused" bottom: "aux" }
"""
    )
    model, _, _ = convert_and_compare(tmp_path, net)
    assert [o.name for o in model.graph.output] == ["r"]


@pytest.mark.parametrize(
    ("layer", "fragments"),
    [
        ('type: "Silence" bottom: "data" top: "x"', ["Silence has no tops, got 1: x"]),
        ('type: "Silence" bottom: "nope"', ["bottom blob 'nope'"]),
        ('type: "Split" bottom: "data" bottom: "data" top: "x"', ["expected 1 bottom blob, got 2"]),
        (
            'type: "Dropout" bottom: "data" top: "x" dropout_param { dropout_ratio: 1 '
            "scale_train: false }",
            ["dropout_ratio must be in [0, 1), got 1.0"],
        ),
    ],
    ids=["silence-top", "silence-missing", "split-bottoms", "dropout-ratio"],
)
def test_errors(tmp_path, layer, fragments):
    expect_error(tmp_path, INPUT + f'layer {{ name: "bad" {layer} }}', None, "bad", *fragments)
