"""Reshape / Flatten / Squeeze / Unsqueeze -> Reshape or Flatten; Transpose -> Permute."""

from __future__ import annotations

import numpy as np
import pytest

from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node


def _types(model):
    net, _ = build_net(model)
    return [layer.type for layer in net.layer if layer.type != "Input"]


@pytest.mark.parametrize(
    ("target", "caffe_type"),
    [([2, -1], "Flatten"), ([0, 6, 10], "Reshape"), ([2, 3, 20], "Reshape"), ([1, -1], "Reshape")],
)
def test_reshape(tmp_path, target, caffe_type):
    model = make_model([node("Reshape", ["x", "s"], "y"), node("Relu", ["y"], "z")],
                       {"x": (2, 3, 4, 5)}, ["z"], {"s": np.array(target, np.int64)})  # fmt: skip
    assert _types(model)[0] == caffe_type
    convert_and_compare(tmp_path, model)


@pytest.mark.parametrize(("axis", "caffe_type"), [(1, "Flatten"), (2, "Reshape"), (0, "Reshape")])
def test_flatten(tmp_path, axis, caffe_type):
    model = make_model([node("Flatten", ["x"], "y", axis=axis)], {"x": (2, 3, 4, 5)}, ["y"])
    assert _types(model) == [caffe_type]
    convert_and_compare(tmp_path, model)


def test_squeeze_unsqueeze(tmp_path):
    model = make_model(
        [node("Squeeze", ["x", "a"], "s"), node("Unsqueeze", ["s", "b"], "y")],
        {"x": (2, 3, 1, 5)}, ["y"],
        {"a": np.array([2], np.int64), "b": np.array([1], np.int64)},
    )  # fmt: skip
    convert_and_compare(tmp_path, model)


@pytest.mark.parametrize(
    ("shape", "perm"),
    [((1, 3, 4, 5), [0, 2, 3, 1]), ((2, 3, 4, 5), [0, 3, 1, 2]), ((2, 3, 4), [0, 2, 1])],
)
def test_transpose(tmp_path, shape, perm):
    model = make_model([node("Transpose", ["x"], "y", perm=perm)], {"x": shape}, ["y"])
    assert _types(model) == ["Permute"]
    convert_and_compare(tmp_path, model)


def test_exporter_shape_subgraph_is_folded(tmp_path):
    """PyTorch's x.view(x.size(0), -1, 4): Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
    With static shapes the subgraph is a constant and only the Reshape reaches Caffe."""
    model = make_model(
        [
            node("Transpose", ["x"], "t", perm=[0, 2, 3, 1]),
            node("Shape", ["t"], "shape"),
            node("Gather", ["shape", "zero"], "n", axis=0),
            node("Unsqueeze", ["n", "axes"], "n1"),
            node("Concat", ["n1", "rest"], "target", axis=0),
            node("Reshape", ["t", "target"], "y"),
        ],
        {"x": (1, 8, 3, 5)}, ["y"],
        {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
         "rest": np.array([-1, 4], np.int64)},
    )  # fmt: skip
    assert _types(model) == ["Permute", "Reshape"]
    got, _ = convert_and_compare(tmp_path, model)
    assert got["y"].shape == (1, 30, 4)
