import numpy as np
import pytest

from tests.pytorch.helpers import compare, graph_model, node


@pytest.mark.parametrize("target", [[0, -1], [2, 0, 5, -1], [-1, 20], [0, 0, 20]])
def test_reshape(target):
    m = graph_model(
        [node("Reshape", ["x", "s"], ["y"])],
        {"x": [2, 3, 4, 5]},
        {"y": None},
        {"s": np.array(target, np.int64)},
    )
    compare(m, atol=0)


def test_reshape_from_shape_chain():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as the Caffe converter emits: folded."""
    from onnx import helper

    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "i0"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "ax"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "m1"], ["t"], name="cat", axis=0),
        helper.make_node("Reshape", ["x", "t"], ["y"], name="reshape"),
    ]
    inits = {
        "i0": np.array(0, np.int64),
        "ax": np.array([0], np.int64),
        "m1": np.array([-1], np.int64),
    }
    code = compare(graph_model(nodes, {"x": [2, 3, 4]}, {"y": None}, inits), atol=0)
    assert ".reshape((2, 12))" in code


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_flatten(axis):
    compare(
        graph_model([node("Flatten", ["x"], ["y"], axis=axis)], {"x": [2, 3, 4, 5]}, {"y": None}),
        atol=0,
    )


def test_transpose_concat_squeeze():
    from onnx import helper

    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="tr", perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["x"], ["t2"], name="tr2"),
        helper.make_node("Unsqueeze", ["t", "ax"], ["u"], name="unsq"),
        helper.make_node("Squeeze", ["u", "ax"], ["q"], name="sq"),
        helper.make_node("Concat", ["q", "q"], ["y"], name="cat", axis=3),
        helper.make_node("Identity", ["t2"], ["z"], name="id"),
    ]
    m = graph_model(
        nodes, {"x": [2, 3, 4, 5]}, {"y": None, "z": None}, {"ax": np.array([1], np.int64)}
    )
    compare(m, atol=0)
