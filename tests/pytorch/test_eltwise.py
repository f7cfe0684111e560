import numpy as np
import pytest

from tests.pytorch.helpers import compare, graph_model, node

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_binary_with_constants(op):
    inits = {"c": RNG.uniform(0.5, 2, [3, 1, 1]).astype(np.float32), "k": np.array(0.3, np.float32)}
    m = graph_model(
        [
            node(op, ["x", "c"], ["t"]),
            helper_node(op, ["k", "t"], ["u"]),
            helper_node(op, ["u", "x"], ["y"]),
        ],
        {"x": [2, 3, 4, 5]},
        {"y": None},
        inits,
    )
    # Div chains reach |y| ~ 1e4: float32 rounding there is relative.
    compare(m, atol=1e-5, rtol=1e-6)


def helper_node(op, ins, outs):
    from onnx import helper

    return helper.make_node(op, ins, outs, name=f"{op}_{outs[0]}")


@pytest.mark.parametrize("op", ["Max", "Min", "Sum"])
def test_variadic(op):
    m = graph_model(
        [node(op, ["a", "b", "c"], ["y"])], {"a": [2, 3], "b": [2, 3], "c": [1, 3]}, {"y": None}
    )
    compare(m, atol=1e-6)
