"""eliminate_identity: Identity nodes removed, graph-output names kept, refusals explained."""

from __future__ import annotations

from onnx import helper

from converters.passes import run_passes
from tests.passes.helpers import assert_same_outputs, make_model, ops, rng_array

S = [1, 3, 4, 4]


def test_chain_of_identities_removed():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Identity", ["a"], ["b"]),
        helper.make_node("Identity", ["b"], ["c"]),
        helper.make_node("Sigmoid", ["c"], ["y"]),
        helper.make_node("Identity", ["a"], ["z"]),  # a graph output: Relu writes 'z' instead
    ]
    before = make_model(nodes, {"x": S}, {"y": S, "z": S})
    after = run_passes(before, ["eliminate_identity"])
    assert ops(before)["Identity"] == 3
    assert ops(after) == {"Relu": 1, "Sigmoid": 1}
    relu = next(n for n in after.graph.node if n.op_type == "Relu")
    assert list(relu.output) == ["z"]
    assert_same_outputs(before, after, atol=0)


def _refused(nodes, inputs, outputs, inits, reason):
    model = make_model(nodes, inputs, outputs, inits)
    report: list[str] = []
    after = run_passes(model, ["eliminate_identity"], report)
    assert ops(after) == ops(model)
    assert any(reason in r for r in report), report
    assert_same_outputs(model, after, atol=0)


def test_input_straight_to_output_is_kept():
    nodes = [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["r"])]
    _refused(
        nodes,
        {"x": S},
        {"y": S, "r": S},
        None,
        "its output 'y' is a graph output and its input 'x' is a graph input or constant",
    )


def test_constant_to_output_is_kept():
    nodes = [helper.make_node("Identity", ["k"], ["y"]), helper.make_node("Relu", ["x"], ["r"])]
    _refused(
        nodes,
        {"x": S},
        {"y": S, "r": S},
        {"k": rng_array(S)},
        "its input 'k' is a graph input or constant",
    )


def test_second_name_for_an_output_is_kept():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["b"])]
    _refused(
        nodes,
        {"x": S},
        {"a": S, "b": S},
        None,
        "its output 'b' is a graph output and its input 'a' is a graph output",
    )


def test_unrelated_unused_initializer_is_left_to_dead_node_elimination():
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    model = make_model(nodes, {"x": S}, {"y": S}, {"spare": rng_array((2,))})
    after = run_passes(model, ["eliminate_identity"])
    assert [t.name for t in after.graph.initializer] == ["spare"]
    assert not run_passes(after, ["eliminate_dead_nodes"]).graph.initializer
