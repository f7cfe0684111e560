"""Eltwise and Axpy (converters/caffe/layers/eltwise.py).

Eltwise is compared with OpenCV DNN at atol 1e-5. OpenCV 4.14 cannot run the fork's Axpy layer
(its shape pass fails with "end <= dims"), so Axpy is checked against the fork's forward pass in
numpy: ``top[n, c] = a[n, c] * x[n, c] + y[n, c]``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

SHAPE = (2, 3, 4, 5)


def _inputs(names, shape=SHAPE) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return "".join(f'input: "{n}"\ninput_shape {{ {dims} }}\n' for n in names)


def _feeds(names, seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(shape).astype(np.float32) for n in names}


def _eltwise_net(names, param: str) -> str:
    bottoms = " ".join(f'bottom: "{n}"' for n in names)
    return _inputs(names) + f'layer {{ name: "e" type: "Eltwise" {bottoms} top: "e" {param} }}'


# (bottoms, eltwise_param, numpy reference, expected ONNX ops)
CASES = {
    "sum-default": ("ab", "", lambda a, b: a + b, ["Add"]),
    "sum-3": ("abc", "eltwise_param { operation: SUM }", lambda a, b, c: a + b + c, ["Sum"]),
    "sum-coeff-3": ("abc", "eltwise_param { coeff: 0.5 coeff: -2 coeff: 1 }",
                    lambda a, b, c: 0.5 * a - 2 * b + c, ["Mul", "Mul", "Sum"]),
    "sub": ("ab", "eltwise_param { operation: SUM coeff: 1 coeff: -1 }", lambda a, b: a - b,
            ["Sub"]),
    "sum-coeff-2": ("ab", "eltwise_param { coeff: 2 coeff: 3 }", lambda a, b: 2 * a + 3 * b,
                    ["Mul", "Mul", "Add"]),
    "prod-2": ("ab", "eltwise_param { operation: PROD }", lambda a, b: a * b, ["Mul"]),
    "prod-4": ("abcd", "eltwise_param { operation: PROD }", lambda a, b, c, d: a * b * c * d,
               ["Mul", "Mul", "Mul"]),
    "max-2": ("ab", "eltwise_param { operation: MAX }", np.maximum, ["Max"]),
    "max-3": ("abc", "eltwise_param { operation: MAX }",
              lambda a, b, c: np.maximum(np.maximum(a, b), c), ["Max"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_eltwise(tmp_path, case):
    names, param, reference, ops = CASES[case]
    feeds = _feeds(names)
    model, got, _ = convert_and_compare(tmp_path, _eltwise_net(names, param), feeds=feeds)
    np.testing.assert_allclose(got["e"], reference(*feeds.values()), atol=1e-5)
    assert op_types(model) == ops


def test_max_ignores_coeff(tmp_path):
    """numpy reference: Caffe's EltwiseLayer accepts coeff on MAX and ignores it (it refuses
    coeff only for PROD); OpenCV 4.14 refuses it ('op == SUM || coeffs.size() == 0')."""
    net = _eltwise_net("ab", "eltwise_param { operation: MAX coeff: 2 coeff: 3 }")
    model, got, feeds = convert_and_run(tmp_path, net)
    np.testing.assert_array_equal(got["e"], np.maximum(feeds["a"], feeds["b"]))
    assert op_types(model) == ["Max"]


def test_in_place_chain(tmp_path):
    # Residual block shape: the sum is written in place over its first bottom, then ReLU'd.
    # Real Caffe zeroes the top (= bottom 0's memory) before accumulating, so bottom 0 drops
    # out: y = relu(0.5 * b). OpenCV computes 3 * x + 0.5 * b instead, so Caffe only.
    net = (
        _inputs("ab")
        + """
layer { name: "ra" type: "ReLU" bottom: "a" top: "x" }
layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "b" top: "x"
        eltwise_param { coeff: 3 coeff: 0.5 } }
layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
"""
    )
    feeds = _feeds("ab", seed=3)
    _, got, _ = convert_and_compare(tmp_path, net, feeds=feeds, opencv=False)
    np.testing.assert_allclose(got["x"], np.maximum(0.5 * feeds["b"], 0), atol=1e-6)


def test_in_place_over_a_blob_read_twice_is_refused(tmp_path):
    # Real Caffe: "Top blob 'x' produced by multiple sources" (reading x twice inserts a Split,
    # after which the sum is no longer in place).
    net = (
        _inputs("ab")
        + """
layer { name: "ra" type: "ReLU" bottom: "a" top: "x" }
layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "b" bottom: "x" top: "x"
        eltwise_param { coeff: 1 coeff: 0.5 coeff: 2 } }
"""
    )
    expect_error(tmp_path, net, None, "sum", "(Eltwise)", "produced by multiple sources")


V1_NET = (
    _inputs("abc")
    + """
layers { name: "sum" type: ELTWISE bottom: "a" bottom: "b" bottom: "c" top: "sum"
         eltwise_param { operation: SUM coeff: 1 coeff: -1 coeff: 0.25 } }
layers { name: "prod" type: ELTWISE bottom: "sum" bottom: "c" top: "prod"
         eltwise_param { operation: PROD } }
layers { name: "max" type: ELTWISE bottom: "prod" bottom: "a" top: "max"
         eltwise_param { operation: MAX } }
"""
)


def test_v1_format(tmp_path):
    feeds = _feeds("abc", seed=4)
    _, got, _ = convert_and_compare(tmp_path, V1_NET, feeds=feeds)
    a, b, c = feeds.values()
    np.testing.assert_allclose(got["max"], np.maximum((a - b + 0.25 * c) * c, a), atol=1e-5)


@pytest.mark.parametrize(
    ("a_shape", "x_shape"),
    [
        ((2, 3, 1, 1), (2, 3, 4, 5)),
        ((2, 3), (2, 3, 4, 5)),
        ((2, 3), (2, 3)),
        ((2, 3, 1), (2, 3, 6)),
    ],
    ids=["nc11", "nc", "2d", "3d"],
)
def test_axpy(tmp_path, a_shape, x_shape):
    """numpy reference (OpenCV cannot run Axpy, see module docstring)."""
    net = (
        "".join(
            f'input: "{n}"\ninput_shape {{ {" ".join(f"dim: {d}" for d in s)} }}\n'
            for n, s in (("a", a_shape), ("x", x_shape), ("y", x_shape))
        )
        + 'layer { name: "axpy" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "out" }'
    )
    model, got, feeds = convert_and_run(tmp_path, net)
    a = feeds["a"].reshape(a_shape[:2] + (1,) * (len(x_shape) - 2))
    np.testing.assert_allclose(got["out"], a * feeds["x"] + feeds["y"], atol=1e-6)
    assert op_types(model)[-2:] == ["Mul", "Add"]


@pytest.mark.parametrize(
    ("net", "fragments"),
    [
        (_eltwise_net("a", ""), ["needs at least 2 bottom blobs, got 1"]),
        (_eltwise_net("ab", "eltwise_param { coeff: 1 }"), ["1 coeff value(s) for 2 bottoms"]),
        (
            _eltwise_net("ab", "eltwise_param { operation: PROD coeff: 1 coeff: 2 }"),
            ["coeff applies to SUM only"],
        ),
        (
            _inputs("a")
            + _inputs("b", (2, 3, 4, 6))
            + 'layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" }',
            [
                "bottom 1 'b' has shape [2, 3, 4, 6], expected the shape of bottom 0 'a' [2, 3, 4, 5]"
            ],
        ),
        (
            _inputs("axy") + 'layer { name: "e" type: "Axpy" bottom: "a" bottom: "x" top: "e" }',
            ["expected 3 bottom blobs (a, x, y), got 2"],
        ),
        (
            _inputs("xy")
            + _inputs("a", (2, 3, 4, 1))
            + 'layer { name: "e" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "e" }',
            ["a 'a' has shape [2, 3, 4, 1]; expected [2, 3] or [2, 3, 1, 1]"],
        ),
        (
            _inputs("ax")
            + _inputs("y", (2, 3, 4, 4))
            + 'layer { name: "e" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "e" }',
            ["must have the same shape"],
        ),
    ],
    ids=[
        "one-bottom",
        "coeff-count",
        "prod-coeff",
        "shape",
        "axpy-bottoms",
        "axpy-a-shape",
        "axpy-xy",
    ],
)
def test_errors(tmp_path, net, fragments):
    expect_error(tmp_path, net.replace('name: "e"', 'name: "bad"'), None, "bad", *fragments)
