"""InnerProduct (converters/caffe/layers/inner_product.py).

Compared with real Caffe and OpenCV DNN at atol 1e-5 (Caffe: ``y = x.reshape(M, K) @ W.T + b``
with ``K`` the product of the dims from ``axis``, ``W`` stored ``(N, K)``, or ``(K, N)`` with
``transpose: true``). OpenCV 4.14 ignores ``transpose`` (it reads the ``(K, N)`` blob as
``(N, K)``; measured: off by up to 8 on random weights), so the transposed cases are checked
against real Caffe only (tests/test_side_runtime.py shows OpenCV's wrong answer).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types


def _input(shape) -> str:
    return f'input: "data"\ninput_shape {{ {" ".join(f"dim: {d}" for d in shape)} }}\n'


def _ip(param: str, name: str = "fc", bottom: str = "data") -> str:
    return (
        f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
        f"inner_product_param {{ {param} }} }}\n"
    )


def _weights(n: int, k: int, bias: bool = True, transpose: bool = False, seed: int = 2):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n) if transpose else (n, k)).astype(np.float32)
    return [w, rng.standard_normal(n).astype(np.float32)] if bias else [w]


# id: (input shape, inner_product_param, axis, transpose, bias, output shape, ONNX ops)
CASES = {
    "2d": ((3, 10), "num_output: 4", 1, False, True, (3, 4), ["Gemm"]),
    "4d": ((2, 3, 4, 5), "num_output: 6", 1, False, True, (2, 6), ["Flatten", "Gemm"]),
    "4d-axis2": ((2, 3, 4, 5), "num_output: 7 axis: 2", 2, False, True, (2, 3, 7),
                 ["Reshape", "Gemm", "Reshape"]),
    "4d-axis-neg1": ((2, 3, 4, 5), "num_output: 2 axis: -1", 3, False, True, (2, 3, 4, 2),
                     ["Reshape", "Gemm", "Reshape"]),
    "transpose": ((2, 3, 2, 2), "num_output: 5 transpose: true", 1, True, True, (2, 5),
                  ["Flatten", "Gemm"]),
    "no-bias": ((4, 6), "num_output: 3 bias_term: false", 1, False, False, (4, 3), ["Gemm"]),
    "axis2-transpose-no-bias": ((1, 2, 3, 4), "num_output: 3 axis: 2 transpose: true "
                                "bias_term: false", 2, True, False, (1, 2, 3),
                                ["Reshape", "Gemm", "Reshape"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_inner_product(tmp_path, case):
    """Against Caffe always, and against OpenCV unless ``transpose`` (see module docstring)."""
    shape, param, axis, transpose, bias, out_shape, ops = CASES[case]
    k = math.prod(shape[axis:])
    blobs = _weights(out_shape[-1], k, bias, transpose)
    feeds = {"data": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    model, got, _ = convert_and_compare(
        tmp_path, _input(shape) + _ip(param), {"fc": blobs}, feeds=feeds, opencv=not transpose
    )
    assert got["fc"].shape == out_shape
    assert op_types(model) == ops
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert {a.name: a.i for a in gemm.attribute}["transB"] == (0 if transpose else 1)
    assert len(gemm.input) == 2 + bias


def test_legacy_4d_blobs(tmp_path):
    # V1-era caffemodels store the weights as (1, 1, N, K) and the bias as (1, 1, 1, N).
    shape = (2, 3, 2, 2)
    blobs = _weights(5, 12)
    feeds = {"data": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    convert_and_compare(
        tmp_path, _input(shape) + _ip("num_output: 5"), {"fc": blobs}, feeds=feeds,
        legacy_blobs=True,
    )  # fmt: skip


def test_v1_layers_net(tmp_path):
    """A LeNet-style V1 tail: INNER_PRODUCT, RELU in place, INNER_PRODUCT, legacy blobs."""
    net = (
        'name: "v1"\ninput: "data"\ninput_dim: 2\ninput_dim: 4\ninput_dim: 3\ninput_dim: 3\n'
        'layers { name: "ip1" type: INNER_PRODUCT bottom: "data" top: "ip1" '
        "inner_product_param { num_output: 8 } }\n"
        'layers { name: "relu1" type: RELU bottom: "ip1" top: "ip1" }\n'
        'layers { name: "ip2" type: INNER_PRODUCT bottom: "ip1" top: "ip2" '
        "inner_product_param { num_output: 3 } }\n"
    )
    w = {"ip1": _weights(8, 36, seed=5), "ip2": _weights(3, 8, seed=6)}
    feeds = {"data": np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)}
    model, _, _ = convert_and_compare(tmp_path, net, w, feeds=feeds, legacy_blobs=True)
    assert op_types(model) == ["Flatten", "Gemm", "Relu", "Gemm"]


def test_in_place_bottom_and_chained(tmp_path):
    # The second InnerProduct reads the ReLU-written "fc", whose last write keeps the name.
    net = (
        _input((2, 6))
        + _ip("num_output: 4")
        + 'layer { name: "r" type: "ReLU" bottom: "fc" top: "fc" }\n'
        + _ip("num_output: 3 axis: 1", name="fc2", bottom="fc")
    )
    w = {"fc": _weights(4, 6), "fc2": _weights(3, 4, seed=9)}
    _, got, _ = convert_and_compare(tmp_path, net, w)
    assert list(got) == ["fc2"] and got["fc2"].shape == (2, 3)


@pytest.mark.parametrize(
    ("param", "blobs", "fragments"),
    [
        ("num_output: 4", [(4, 11), (4,)],
         ["weight blob 0 (weights) has 44 values", "expected 48 for shape [4, 12]"]),
        ("num_output: 4 transpose: true", [(12, 3), (4,)],
         ["weight blob 0 (weights) has 36 values", "expected 48 for shape [12, 4]"]),
        ("num_output: 4", [(4, 12), (5,)], ["weight blob 1 (bias) has 5 values"]),
        ("num_output: 4", [(4, 12)], ["missing weight blob 1 (bias)"]),
    ],
    ids=["weights", "transposed-weights", "bias", "bias-missing"],
)  # fmt: skip
def test_wrong_blobs_name_the_layer(tmp_path, param, blobs, fragments):
    weights = {"fc": [np.ones(s, np.float32) for s in blobs]}
    expect_error(tmp_path, _input((1, 3, 2, 2)) + _ip(param), weights, "fc", "(InnerProduct)",
                 *fragments)  # fmt: skip


@pytest.mark.parametrize("axis", [4, -5])
def test_axis_out_of_range_is_refused(tmp_path, axis):
    weights = {"fc": _weights(2, 12)}
    expect_error(tmp_path, _input((1, 3, 2, 2)) + _ip(f"num_output: 2 axis: {axis}"), weights,
                 "fc", f"inner_product_param.axis {axis} is out of range for a 4-D input")  # fmt: skip
