import numpy as np

from tests.pytorch.helpers import compare, graph_model, node

RNG = np.random.default_rng(2)


def test_batch_norm():
    c = 5
    inits = {
        "s": RNG.uniform(0.5, 2, c),
        "b": RNG.standard_normal(c),
        "m": RNG.standard_normal(c),
        "v": RNG.uniform(0.5, 1.5, c),
    }
    inits = {k: v.astype(np.float32) for k, v in inits.items()}
    m = graph_model(
        [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
        {"x": [2, c, 4, 6]},
        {"y": None},
        inits,
    )
    assert "nn.BatchNorm2d(5, eps=0.001" in compare(m, atol=1e-5)


def test_lrn():
    m = graph_model(
        [node("LRN", ["x"], ["y"], size=5, alpha=1e-2, beta=0.75, bias=2.0)],
        {"x": [1, 8, 4, 4]},
        {"y": None},
    )
    compare(m, atol=1e-6)
