"""Gemm / MatMul with constant weights -> InnerProduct."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node

RNG = np.random.default_rng(5)


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    ("attrs", "b_shape", "c_shape"),
    [
        (dict(transB=1), (7, 12), (7,)),
        ({}, (12, 7), (1, 7)),
        (dict(transB=1, alpha=0.5, beta=2.0), (7, 12), (7,)),
        (dict(transB=1), (7, 12), None),
        (dict(transB=1), (7, 12), ()),
    ],
)
def test_gemm(tmp_path, attrs, b_shape, c_shape):
    inputs = ["x", "b"] + (["c"] if c_shape is not None else [])
    inits = {"b": _w(*b_shape)} | ({"c": _w(*c_shape)} if c_shape is not None else {})
    model = make_model([node("Gemm", inputs, "y", **attrs)], {"x": (3, 12)}, ["y"], inits)
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer] == ["Input", "InnerProduct"]
    convert_and_compare(tmp_path, model, rtol=1e-6)


def test_flatten_then_gemm(tmp_path):
    """The usual classifier head: Flatten(axis=1) of NCHW features, then Gemm(transB=1)."""
    model = make_model(
        [node("Flatten", ["x"], "f"), node("Gemm", ["f", "b", "c"], "y", transB=1)],
        {"x": (2, 3, 4, 4)}, ["y"], {"b": _w(10, 48), "c": _w(10)},
    )  # fmt: skip
    convert_and_compare(tmp_path, model, rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 12), (2, 5, 12)])
def test_matmul(tmp_path, shape):
    model = make_model([node("MatMul", ["x", "b"], "y")], {"x": shape}, ["y"], {"b": _w(12, 6)})
    convert_and_compare(tmp_path, model, rtol=1e-6)


def test_refuses_matmul_of_two_tensors():
    model = make_model([node("MatMul", ["a", "b"], "y")], {"a": (4, 12), "b": (12, 6)}, ["y"])
    with pytest.raises(ConversionError, match=r"'matmul_y' \(MatMul\): only tensor x constant"):
        build_net(model)


def test_refuses_trans_a():
    model = make_model([node("Gemm", ["x", "b"], "y", transA=1)], {"x": (12, 3)}, ["y"],
                       {"b": _w(12, 7)})  # fmt: skip
    with pytest.raises(ConversionError, match="transA=1"):
        build_net(model)
