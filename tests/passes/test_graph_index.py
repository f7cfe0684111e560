"""The pass graph's producer/reader indexes, kept up to date edit by edit, always equal the
indexes rebuilt from the nodes from scratch (the reference here: a plain scan of the nodes),
and the passes that rely on them still compute the same numbers."""

from __future__ import annotations

from collections import Counter

import numpy as np
from onnx import TensorProto, helper

from converters.passes import run_passes
from converters.passes.graph import Graph
from tests.passes.helpers import assert_same_outputs, make_model, ops, rng_array

S = [1, 3, 4, 4]


def assert_index_exact(g: Graph, names) -> None:
    """For every value in ``names`` and in the live nodes: producer and readers as a rescan."""
    producer, readers = {}, {}
    for node in g.nodes:
        for o in node.output:
            if o:
                producer[o] = node
        for i in node.input:
            if i:
                readers.setdefault(i, Counter())[id(node)] += 1
    values = set(names) | set(producer) | set(readers)
    for v in values:
        assert g.producer.get(v) is producer.get(v), v
        assert Counter(id(n) for n in g.readers(v)) == readers.get(v, Counter()), v
        assert g.used(v) == (v in readers or v in g.outputs), v
    assert [id(n) for n in g.nodes] == [id(n) for n in g.nodes if g.alive(n)]


def _names(model) -> set[str]:
    return {v for n in model.graph.node for v in [*n.input, *n.output]}


def test_node_reading_a_value_twice():
    """Add(c, Identity(c)) becomes Add(c, c): c has two reads, so it is not single-use and
    the Conv -> Add fold is refused; removing the Add clears both reads."""
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Identity", ["c"], ["d"]),
        helper.make_node("Add", ["c", "d"], ["y"]),
    ]
    model = make_model(nodes, {"x": S}, {"y": [1, 2, 4, 4]}, {"W": rng_array([2, 3, 1, 1])})
    g = Graph(model)
    identity, add = g.nodes[1], g.nodes[2]
    assert g.single_use("c") is False and g.single_use("d") is True
    g.bypass(identity, "c", "d")
    assert list(add.input) == ["c", "c"]
    assert [id(n) for n in g.readers("c")] == [id(add), id(add)]
    assert not g.single_use("c") and not g.used("d")
    assert_index_exact(g, _names(model))
    g.remove(add)
    assert g.readers("c") == [] and not g.used("c")
    g.remove(add)  # removing twice is a no-op
    assert_index_exact(g, _names(model))

    after = run_passes(model)
    assert ops(after) == {"Conv": 1, "Add": 1}
    assert_same_outputs(model, after, atol=1e-6)


def test_rewiring_a_graph_output():
    """Identity(a) -> y with y a graph output: the Relu writes y, a's other reader follows."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Identity", ["a"], ["y"]),
        helper.make_node("Sigmoid", ["a"], ["z"]),
    ]
    model = make_model(nodes, {"x": S}, {"y": S, "z": S})
    g = Graph(model)
    relu, identity, sigmoid = g.nodes
    g.bypass(identity, "a", "y")
    assert list(relu.output) == ["y"] and list(sigmoid.input) == ["y"]
    assert g.producer["y"] is relu and "a" not in g.producer
    assert [id(n) for n in g.readers("y")] == [id(sigmoid)] and g.readers("a") == []
    assert g.used("y") and not g.used("a")
    assert g.bypass_refusal("y", "z") is not None  # now y is an output fed to another output
    assert_index_exact(g, _names(model))

    after = run_passes(model)
    assert ops(after) == {"Relu": 1, "Sigmoid": 1}
    assert_same_outputs(model, after, atol=0)


def test_graph_output_read_by_a_node_is_not_single_use():
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Mul", ["c", "k"], ["y"]),
    ]
    inits = {"W": rng_array([2, 3, 1, 1]), "k": rng_array([1, 2, 1, 1], seed=1)}
    model = make_model(nodes, {"x": S}, {"c": [1, 2, 4, 4], "y": [1, 2, 4, 4]}, inits)
    g = Graph(model)
    assert len(g.readers("c")) == 1 and not g.single_use("c") and g.used("y")
    report: list[str] = []
    after = run_passes(model, ["fold_batchnorm"], report)
    assert ops(after) == {"Conv": 1, "Mul": 1}
    assert any("its output is a graph output" in r for r in report), report
    assert_same_outputs(model, after, atol=0)


def test_edit_in_place_and_fold_keep_index_exact():
    """fold_batchnorm renames the Conv's output to the last step's: the index follows."""
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"]),
        helper.make_node("Mul", ["c", "s"], ["m"]),
        helper.make_node("Add", ["m", "t"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    inits = {
        "W": rng_array([2, 3, 3, 3]),
        "B": rng_array([2], seed=1),
        "s": rng_array([1, 2, 1, 1], seed=2),
        "t": rng_array([1, 2, 1, 1], seed=3),
    }
    model = make_model(nodes, {"x": S}, {"y": [1, 2, 2, 2]}, inits)
    g = Graph(model)
    conv, relu = g.nodes[0], g.nodes[3]
    from converters.passes.fold_batchnorm import RULE

    assert RULE.check(g, conv) is None
    RULE.rewrite(g, conv)
    assert g.producer["a"] is conv and [id(n) for n in g.readers("a")] == [id(relu)]
    assert "c" not in g.producer and "m" not in g.producer and not g.used("m")
    assert len(g.nodes) == 2
    assert_index_exact(g, _names(model))

    after = run_passes(model)
    assert ops(after) == {"Conv": 1, "Relu": 1}
    assert_same_outputs(model, after, atol=1e-5)


def test_value_read_inside_a_subgraph():
    """An If branch reading ``a`` keeps the Identity that produces it, until the If is gone."""
    branch_out = helper.make_tensor_value_info("o", TensorProto.FLOAT, S)
    then = helper.make_graph([helper.make_node("Neg", ["b"], ["o"])], "then", [], [branch_out])
    other = helper.make_graph([helper.make_node("Abs", ["b"], ["o"])], "else", [], [branch_out])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Identity", ["a"], ["b"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other),
    ]
    model = make_model(nodes, {"x": S, "cond": ([], TensorProto.BOOL)}, {"y": S})
    g = Graph(model)
    identity, if_node = g.nodes[1], g.nodes[2]
    assert g.read_in_subgraph("b") and g.used("b") and not g.single_use("b")
    assert g.bypass_refusal("a", "b") == "a value is read inside a subgraph"
    g.remove(if_node)
    assert not g.read_in_subgraph("b") and not g.used("b")
    assert g.bypass_refusal("a", "b") is None
    g.bypass(identity, "a", "b")
    assert_index_exact(g, _names(model))

    feeds = {"x": rng_array(S), "cond": np.array(True)}
    after = run_passes(model)
    assert ops(after) == ops(model)
    assert_same_outputs(model, after, atol=0, feeds=feeds)


def test_constant_chain_folds_in_one_sweep_in_round_order():
    """A then B = f(A) fold in one sweep; the initializers come in the order of the rounds a
    sweep-by-sweep fixed point would fold them (A and C in round 1, B in round 2)."""
    nodes = [
        helper.make_node("Add", ["k1", "k2"], ["A"]),
        helper.make_node("Mul", ["A", "k3"], ["B"]),
        helper.make_node("Neg", ["k4"], ["C"]),
        helper.make_node("Add", ["x", "B"], ["p"]),
        helper.make_node("Add", ["p", "A"], ["q"]),
        helper.make_node("Sub", ["q", "C"], ["y"]),
    ]
    inits = {f"k{i}": rng_array(S, seed=i) for i in range(1, 5)}
    model = make_model(nodes, {"x": S}, {"y": S}, inits)
    after = run_passes(model, ["fold_constants"])
    assert ops(after) == {"Add": 2, "Sub": 1}
    assert [t.name for t in after.graph.initializer] == ["A", "C", "B"]
    assert_same_outputs(model, after, atol=1e-6)
