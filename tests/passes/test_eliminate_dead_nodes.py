"""eliminate_dead_nodes: unreachable nodes and the weights they held are removed."""

from __future__ import annotations

import numpy as np
from onnx import helper

from converters.passes import run_passes
from tests.passes.helpers import assert_same_outputs, make_model, ops, rng_array


def test_dead_branch_and_its_weights_removed():
    inits = {"W": rng_array((4, 3, 1, 1)), "W2": rng_array((8, 4, 1, 1))}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
        helper.make_node("Conv", ["c", "W2"], ["dead1"]),
        helper.make_node("Sigmoid", ["dead1"], ["dead2"]),
    ]
    before = make_model(nodes, {"x": [1, 3, 4, 4]}, {"y": [1, 4, 4, 4]}, inits)
    after = run_passes(before, ["eliminate_dead_nodes"])
    assert ops(before) == {"Conv": 2, "Relu": 1, "Sigmoid": 1}
    assert ops(after) == {"Conv": 1, "Relu": 1}
    assert [t.name for t in after.graph.initializer] == ["W"]
    assert_same_outputs(before, after, atol=0)


def test_node_with_one_live_output_and_outputs_stay():
    nodes = [
        helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=1),  # b unused: Split stays
        helper.make_node("Relu", ["a"], ["y"]),
        helper.make_node("Neg", ["x"], ["z"]),  # a graph output nobody reads: stays
    ]
    inits = {"sizes": np.array([1, 2], np.int64)}
    before = make_model(nodes, {"x": [1, 3, 2, 2]}, {"y": [1, 1, 2, 2], "z": [1, 3, 2, 2]}, inits)
    after = run_passes(before, ["eliminate_dead_nodes"])
    assert ops(after) == ops(before)
    assert_same_outputs(before, after, atol=0)


def test_custom_domain_node_is_never_removed():
    """A custom op may have side effects: kept even though nobody reads its output."""
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Log", ["x"], ["side"], domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info("x", 1, [2])], [helper.make_tensor_value_info("y", 1, [2])],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    after = run_passes(model, ["eliminate_dead_nodes"])
    assert ops(after) == {"Relu": 1, "Log": 1}
