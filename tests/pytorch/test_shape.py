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


def test_shape_chain_after_a_stripped_weight_and_a_constant_input():
    """The writer infers shapes on ``onnx_utils.light_copy``: a 288 KiB Conv weight (stripped,
    a typed input there) whose output's shape feeds a Shape -> Gather -> Concat -> Reshape
    chain, and a Reshape target that is an initializer also listed as an input (a constant to
    the writer, as the Caffe export bakes it; onnxruntime uses it unless fed). The generated
    module matches onnxruntime, the chain is folded to integers, the caller's model is intact."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)  # 73,728 floats, > 64 KiB
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["c"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "i1"], ["ch"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["ch", "ax"], ["ch1"], name="unsq"),
        helper.make_node("Concat", ["one", "ch1", "m1"], ["t"], name="cat", axis=0),
        helper.make_node("Reshape", ["c", "t"], ["y"], name="flat"),
        helper.make_node("Reshape", ["y", "fixed"], ["z"], name="fixed_reshape"),
    ]
    inits = {"w": w, "i1": np.array(1, np.int64), "ax": np.array([0], np.int64),
             "one": np.array([1], np.int64), "m1": np.array([-1], np.int64),
             "fixed": np.array([1, 64, 5, 5], np.int64)}  # fmt: skip
    m = graph_model(nodes, {"x": [1, 32, 5, 5]}, {"z": None}, inits)
    m.graph.input.append(helper.make_tensor_value_info("fixed", TensorProto.INT64, [4]))
    before = m.SerializeToString()
    feeds = {"x": rng.standard_normal((1, 32, 5, 5)).astype(np.float32)}
    code = compare(m, atol=1e-4, feeds=feeds)
    assert m.SerializeToString() == before
    assert ".reshape((1, 64, 25))" in code and ".reshape((1, 64, 5, 5))" in code
    assert "INPUTS = ['x']" in code
