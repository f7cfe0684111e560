"""Softmax -> Softmax (opset >= 13 one axis; opset < 13 coerced to 2-D)."""

from __future__ import annotations

import pytest

from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node


@pytest.mark.parametrize(("axis", "shape"), [(1, (2, 5, 3, 4)), (-1, (1, 100, 2)), (2, (2, 3, 4))])
def test_softmax_opset13(tmp_path, axis, shape):
    model = make_model([node("Softmax", ["x"], "y", axis=axis)], {"x": shape}, ["y"])
    convert_and_compare(tmp_path, model)


def test_softmax_opset11_last_axis(tmp_path):
    model = make_model([node("Softmax", ["x"], "y")], {"x": (3, 10)}, ["y"], opset=11)
    convert_and_compare(tmp_path, model)


def test_softmax_opset11_coerced(tmp_path):
    """Before opset 13, axis=1 on NCHW normalizes over C*H*W together."""
    model = make_model([node("Softmax", ["x"], "y", axis=1)], {"x": (2, 3, 4, 5)}, ["y"],
                       opset=11)  # fmt: skip
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer[1:]] == ["Reshape", "Softmax", "Reshape"]
    got, _ = convert_and_compare(tmp_path, model)
    assert got["y"].sum(axis=(1, 2, 3)) == pytest.approx([1.0, 1.0], abs=1e-5)
