import numpy as np
import pytest

from tests.pytorch.helpers import compare, graph_model, node

RNG = np.random.default_rng(3)


@pytest.mark.parametrize(
    "trans_b,alpha,beta,c_shape",
    [(1, 1.0, 1.0, [6]), (0, 1.0, 1.0, [1, 6]), (1, 0.5, 2.0, [6]), (0, 1.0, 1.0, None)],
)
def test_gemm(trans_b, alpha, beta, c_shape):
    b = RNG.standard_normal((6, 4) if trans_b else (4, 6)).astype(np.float32)
    inits = {"b": b}
    ins = ["a", "b"]
    if c_shape:
        inits["c"] = RNG.standard_normal(c_shape).astype(np.float32)
        ins.append("c")
    m = graph_model(
        [node("Gemm", ins, ["y"], transB=trans_b, alpha=alpha, beta=beta)],
        {"a": [3, 4]},
        {"y": None},
        inits,
    )
    assert "nn.Linear(4, 6" in compare(m, atol=1e-5)


def test_matmul():
    w = RNG.standard_normal((4, 3)).astype(np.float32)
    compare(
        graph_model([node("MatMul", ["a", "w"], ["y"])], {"a": [2, 5, 4]}, {"y": None}, {"w": w}),
        atol=1e-5,
    )
