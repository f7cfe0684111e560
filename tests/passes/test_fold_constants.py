"""fold_constants: constant subgraphs and static shape arithmetic become initializers."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from converters.passes import run_passes
from tests.passes.helpers import assert_same_outputs, make_model, ops, rng_array


def _int_const(name, values):
    return helper.make_node(
        "Constant", [], [name],
        value=numpy_helper.from_array(np.asarray(values, dtype=np.int64), name),
    )  # fmt: skip


def test_shape_arithmetic_collapses_to_a_constant_reshape():
    """Reshape(x, Concat(Shape(x)[0:1], Shape(x)[1] * Shape(x)[2], [-1])) -> Reshape(x, const)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        _int_const("i0", [0]),
        _int_const("i1", [1]),
        _int_const("i2", [2]),
        _int_const("m1", [-1]),
        helper.make_node("Gather", ["s", "i0"], ["n"]),
        helper.make_node("Gather", ["s", "i1"], ["c"]),
        helper.make_node("Gather", ["s", "i2"], ["h"]),
        helper.make_node("Mul", ["c", "h"], ["ch"]),
        helper.make_node("Concat", ["n", "ch", "m1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
    ]
    before = make_model(nodes, {"x": [2, 3, 4, 5]}, {"y": [2, 12, 5]})
    after = run_passes(before, ["fold_constants"])
    assert len(before.graph.node) == 12
    assert ops(after) == {"Relu": 1, "Reshape": 1}
    shape = next(t for t in after.graph.initializer if t.name == "shape")
    assert numpy_helper.to_array(shape).tolist() == [2, 12, -1]
    assert_same_outputs(before, after, atol=0)


def test_float_constant_math_folds():
    inits = {"a": rng_array((4, 1, 1), 1.0, 1, low=0.5), "b": rng_array((4, 1, 1), 1.0, 2)}
    nodes = [
        helper.make_node("Sqrt", ["a"], ["sa"]),
        helper.make_node("Div", ["b", "sa"], ["k"]),
        helper.make_node("Mul", ["x", "k"], ["y"]),
    ]
    before = make_model(nodes, {"x": [1, 4, 3, 3]}, {"y": [1, 4, 3, 3]}, inits)
    after = run_passes(before, ["fold_constants"])
    assert ops(after) == {"Mul": 1}
    assert_same_outputs(before, after, atol=1e-6)


def _refused(model, reason):
    report: list[str] = []
    after = run_passes(model, ["fold_constants"], report)
    assert ops(after) == ops(model)
    assert any(reason in r for r in report), report
    return after


def test_growth_and_graph_output_and_random_are_left():
    # Expand a (1,) constant to 1x64x64x64: 262144 elements from 5 -> would grow the file
    nodes = [
        _int_const("shape", [1, 64, 64, 64]),
        helper.make_node("Expand", ["one", "shape"], ["big"]),
        helper.make_node("Add", ["x", "big"], ["y"]),
    ]
    model = make_model(nodes, {"x": [1, 64, 64, 64]}, {"y": [1, 64, 64, 64]},
                       {"one": np.ones(1, np.float32)})  # fmt: skip
    after = run_passes(model, ["fold_constants"], report := [])
    assert ops(after) == {"Expand": 1, "Add": 1}  # the Constant did fold
    assert any("262144 elements from 5" in r for r in report), report
    assert_same_outputs(model, after, atol=0)

    nodes = [helper.make_node("Neg", ["k"], ["y"]), helper.make_node("Relu", ["x"], ["r"])]
    model = make_model(nodes, {"x": [2]}, {"y": [2], "r": [2]}, {"k": rng_array((2,))})
    _refused(model, "its output 'y' is a graph output")

    nodes = [
        helper.make_node("RandomNormal", [], ["n"], shape=[2], dtype=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "n"], ["y"]),
    ]
    after = run_passes(make_model(nodes, {"x": [2]}, {"y": [2]}), ["fold_constants"])
    assert ops(after) == {"RandomNormal": 1, "Add": 1}


def test_non_constant_input_is_left():
    nodes = [helper.make_node("Mul", ["x", "k"], ["y"])]
    model = make_model(nodes, {"x": [3]}, {"y": [3]}, {"k": rng_array((3,))})
    assert ops(run_passes(model, ["fold_constants"])) == {"Mul": 1}
