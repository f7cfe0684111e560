"""Add/Sub/Mul/Div/Max/Sum -> Eltwise, Power (scalar constant), Scale (per-channel constant,
two-bottom broadcast)."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node

SHAPE = (2, 3, 4, 5)
RNG = np.random.default_rng(3)


def _types(model):
    net, _ = build_net(model)
    return [layer.type for layer in net.layer if layer.type != "Input"]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Max"])
def test_two_tensors(tmp_path, op):
    model = make_model([node(op, ["a", "b"], "y")], {"a": SHAPE, "b": SHAPE}, ["y"])
    assert _types(model) == ["Eltwise"]
    convert_and_compare(tmp_path, model)


def test_sum_of_three(tmp_path):
    model = make_model([node("Sum", ["a", "b", "c"], "y")], {"a": SHAPE, "b": SHAPE, "c": SHAPE},
                       ["y"])  # fmt: skip
    convert_and_compare(tmp_path, model)


@pytest.mark.parametrize(
    ("op", "const_shape", "const_first", "caffe_type"),
    [
        ("Add", (), False, "Power"),
        ("Mul", (1,), True, "Power"),
        ("Sub", (), True, "Power"),
        ("Div", (), False, "Power"),
        ("Add", (1, 3, 1, 1), False, "Scale"),
        ("Sub", (3, 1, 1), False, "Scale"),
        ("Sub", (3, 1, 1), True, "Scale"),
        ("Mul", (1, 3, 1, 1), True, "Scale"),
        ("Div", (3, 1, 1), False, "Scale"),
        ("Mul", (4, 5), False, "Scale"),
        ("Add", (3, 1, 5), False, "Scale"),
        ("Mul", (2, 3, 4, 5), False, "Scale"),
    ],
)
def test_with_constant(tmp_path, op, const_shape, const_first, caffe_type):
    c = RNG.uniform(0.5, 2.0, const_shape).astype(np.float32)
    ins = ["c", "x"] if const_first else ["x", "c"]
    model = make_model([node(op, ins, "y")], {"x": SHAPE}, ["y"], {"c": c})
    assert _types(model) == [caffe_type]
    convert_and_compare(tmp_path, model, rtol=1e-6)


def test_mean_then_scale_preprocessing(tmp_path):
    """What embedded preprocessing looks like: (x - mean[c]) * scale[c]."""
    mean = np.array([104, 117, 123], np.float32).reshape(1, 3, 1, 1)
    scale = np.array([0.017, 0.018, 0.019], np.float32).reshape(1, 3, 1, 1)
    model = make_model([node("Sub", ["x", "m"], "t"), node("Mul", ["t", "s"], "y")],
                       {"x": (1, 3, 6, 6)}, ["y"], {"m": mean, "s": scale})  # fmt: skip
    feeds = {"x": RNG.uniform(0, 255, (1, 3, 6, 6)).astype(np.float32)}
    convert_and_compare(tmp_path, model, feeds=feeds, rtol=1e-6)


def test_max_with_zero_is_relu(tmp_path):
    model = make_model([node("Max", ["x", "z"], "y")], {"x": SHAPE}, ["y"],
                       {"z": np.zeros((), np.float32)})  # fmt: skip
    assert _types(model) == ["ReLU"]
    convert_and_compare(tmp_path, model)


@pytest.mark.parametrize(
    ("factor_shape", "axis"), [((2, 3, 1, 1), 0), ((1, 3, 1, 1), 1), ((4, 1), 2)]
)
def test_broadcast_mul_of_tensors(tmp_path, factor_shape, axis):
    """x * s with s (N,C,1,1) (squeeze-excitation): Reshape s to its span, two-bottom Scale."""
    model = make_model([node("Mul", ["s", "x"], "y")], {"x": SHAPE, "s": factor_shape}, ["y"])
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer[2:]] == ["Reshape", "Scale"]
    assert net.layer[-1].scale_param.axis == axis
    convert_and_compare(tmp_path, model)


def test_refuses_mul_needing_tiling():
    model = make_model([node("Mul", ["s", "x"], "y")], {"x": SHAPE, "s": (2, 1, 4, 1)}, ["y"])
    with pytest.raises(ConversionError, match=r"'mul_y' \(Mul\): broadcasting"):
        build_net(model)


def test_refuses_tensor_division():
    model = make_model([node("Div", ["a", "b"], "y")], {"a": SHAPE, "b": SHAPE}, ["y"])
    with pytest.raises(ConversionError, match=r"'div_y' \(Div\): dividing two tensors"):
        build_net(model)


def test_refuses_broadcast_add_of_tensors():
    model = make_model([node("Add", ["a", "b"], "y")], {"a": SHAPE, "b": (1, 3, 1, 1)}, ["y"])
    with pytest.raises(ConversionError, match=r"'add_y' \(Add\): broadcasting"):
        build_net(model)


def test_refuses_constant_that_broadcasts_the_input():
    model = make_model([node("Add", ["x", "c"], "y")], {"x": (1, 3, 1, 1)}, ["y"],
                       {"c": np.ones((1, 3, 4, 4), np.float32)})  # fmt: skip
    with pytest.raises(ConversionError, match="the constant broadcasts the input"):
        build_net(model)
