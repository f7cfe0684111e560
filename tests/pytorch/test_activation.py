import numpy as np
import pytest

from tests.pytorch.helpers import compare, graph_model, node

RNG = np.random.default_rng(4)


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "LeakyRelu", "Exp", "Abs"])
def test_unary(op):
    compare(graph_model([node(op, ["x"], ["y"])], {"x": [2, 3, 4, 5]}, {"y": None}), atol=1e-6)


@pytest.mark.parametrize(
    "slope_shape,module",
    [
        ([3, 1, 1], "nn.PReLU(3)"),
        ([1], "nn.PReLU(1)"),
        ([5], "torch.where"),
        ([1, 3, 1, 5], "torch.where"),
    ],
)
def test_prelu(slope_shape, module):
    slope = RNG.uniform(0, 0.5, slope_shape).astype(np.float32)
    m = graph_model(
        [node("PRelu", ["x", "s"], ["y"])], {"x": [2, 3, 4, 5]}, {"y": None}, {"s": slope}
    )
    assert module in compare(m, atol=0)


def test_clip():
    inits = {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}
    m = graph_model([node("Clip", ["x", "lo", "hi"], ["y"])], {"x": [2, 6]}, {"y": None}, inits)
    compare(m, atol=0)
    m = graph_model([node("Clip", ["x", "", "hi"], ["y"])], {"x": [2, 6]}, {"y": None}, inits)
    compare(m, atol=0)
