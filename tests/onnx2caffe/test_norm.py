"""BatchNormalization -> BatchNorm + Scale; LRN -> LRN."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node

RNG = np.random.default_rng(9)


@pytest.mark.parametrize("shape", [(2, 4, 5, 6), (3, 4)])
def test_batch_norm(tmp_path, shape):
    c = shape[1]
    inits = {
        "g": RNG.uniform(0.5, 2, c).astype(np.float32),
        "b": RNG.standard_normal(c).astype(np.float32),
        "m": RNG.standard_normal(c).astype(np.float32),
        "v": RNG.uniform(0.1, 3, c).astype(np.float32),
    }
    model = make_model([node("BatchNormalization", ["x", "g", "b", "m", "v"], "y",
                             epsilon=1e-3)], {"x": shape}, ["y"], inits)  # fmt: skip
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer[1:]] == ["BatchNorm", "Scale"]
    assert net.layer[1].batch_norm_param.eps == pytest.approx(1e-3)
    convert_and_compare(tmp_path, model, rtol=1e-6)


@pytest.mark.parametrize(("size", "bias"), [(3, 1.0), (5, 1.0), (5, 2.0)])
def test_lrn(tmp_path, size, bias):
    """bias != 1 is factored out (OpenCV ignores Caffe's LRN k): LRN(k=1) + Power."""
    model = make_model([node("LRN", ["x"], "y", size=size, alpha=0.5, beta=0.75, bias=bias)],
                       {"x": (1, 7, 5, 5)}, ["y"])  # fmt: skip
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer[1:]] == ["LRN"] + ["Power"] * (bias != 1.0)
    convert_and_compare(tmp_path, model, rtol=1e-5)


def test_refuses_even_lrn_size():
    model = make_model([node("LRN", ["x"], "y", size=4)], {"x": (1, 7, 5, 5)}, ["y"])
    with pytest.raises(ConversionError, match=r"'lrn_y' \(LRN\): size 4 is even"):
        build_net(model)
