"""BatchNorm (converters/caffe/layers/batchnorm.py) against OpenCV DNN, atol 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from tests.caffe.helpers import convert_and_compare, write_net
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

C = 4
INPUT = f'input: "data"\ninput_shape {{ dim: 2 dim: {C} dim: 5 dim: 6 }}\n'


def bn_blobs(rng, c: int = C, s: float = 0.999) -> list[np.ndarray]:
    """Caffe's stored form: [mean * s, var * s, s]."""
    mean = rng.normal(0.0, 0.5, c)
    var = rng.uniform(0.3, 2.0, c)
    return [(mean * s).astype(np.float32), (var * s).astype(np.float32), np.float32([s])]


def bn_reference(x, blobs, eps=1e-5):
    s = blobs[2][0]
    f = 0.0 if s == 0 else 1.0 / s
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = (blobs[0] * f).reshape(shape), (blobs[1] * f).reshape(shape)
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("legacy_blobs", [False, True], ids=["shaped-blobs", "legacy-4d-blobs"])
def test_conv_bn_scale_relu_in_place(tmp_path, legacy_blobs):
    net = (
        INPUT
        + """
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv"
        batch_norm_param { use_global_stats: true } }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
"""
    )
    rng = np.random.default_rng(0)
    weights = {
        "conv": [rng.normal(0, 0.3, (3, C, 3, 3)).astype(np.float32),
                 rng.normal(0, 0.1, 3).astype(np.float32)],
        "bn": bn_blobs(rng, 3),
        "sc": [rng.uniform(0.5, 1.5, 3).astype(np.float32), rng.normal(0, 0.2, 3).astype(np.float32)],
    }  # fmt: skip
    model, got, _ = convert_and_compare(tmp_path, net, weights, legacy_blobs=legacy_blobs)
    # BatchNormalization for the optimizer's fold; the Scale stays a constant Mul/Add.
    assert op_types(model) == ["Conv", "BatchNormalization", "Mul", "Add", "Relu"]
    assert [o.name for o in model.graph.output] == ["conv"]
    assert got["conv"].min() == 0.0 and got["conv"].max() > 0.0


@pytest.mark.parametrize(
    ("s", "eps", "param"),
    [
        (1.0, 1e-5, ""),
        (2.5, 1e-3, "batch_norm_param { eps: 0.001 }"),
        (0.0, 1e-5, ""),
        (0.999, 0.1, "batch_norm_param { eps: 0.1 use_global_stats: true }"),
    ],
    ids=["s1", "s2.5-eps", "s0", "eps0.1"],
)
def test_statistics_factor_and_eps(tmp_path, s, eps, param):
    net = INPUT + f'layer {{ name: "bn" type: "BatchNorm" bottom: "data" top: "bn" {param} }}'
    rng = np.random.default_rng(1)
    weights = {"bn": bn_blobs(rng, s=s)}
    data = rng.standard_normal((2, C, 5, 6)).astype(np.float32)
    # s0: Caffe's factor 0 leaves mean = var = 0, so y = x / sqrt(eps) reaches ~400: relative.
    _, got, _ = convert_and_compare(tmp_path, net, weights, feeds={"data": data}, rtol=1e-6)
    np.testing.assert_allclose(got["bn"], bn_reference(data, weights["bn"], eps), atol=1e-4)


def test_two_dim_bottom(tmp_path):
    net = """
input: "data"
input_shape { dim: 3 dim: 7 }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data2" }
"""
    rng = np.random.default_rng(2)
    convert_and_compare(tmp_path, net, {"bn": bn_blobs(rng, 7)})


def _nvcaffe_net(eps: float) -> str:
    return (
        INPUT
        + f"""
layer {{ name: "bn" type: "BatchNorm" bottom: "data" top: "bn"
        batch_norm_param {{ scale_bias: true eps: {eps} }} }}
"""
    )


def _nvcaffe_case(s: float):
    rng = np.random.default_rng(3)
    blobs = [
        *bn_blobs(rng, s=s),
        rng.uniform(0.5, 2, C).astype(np.float32),
        rng.normal(0, 1, C).astype(np.float32),
    ]
    return {"bn": blobs}, {"data": rng.standard_normal((2, C, 5, 6)).astype(np.float32)}


def _nvcaffe_reference(x, blobs, eps):
    plain = [*blobs[:2], np.float32([1.0])]  # blob 2 is not applied in this fork
    y = bn_reference(x, plain, max(eps, 1e-5)) * blobs[3].reshape(1, C, 1, 1)
    return y + blobs[4].reshape(1, C, 1, 1)


@pytest.mark.parametrize(("s", "eps"), [(1.0, 1e-5), (0.5, 1e-3), (2.0, 0.01)])
def test_nvcaffe_scale_bias(tmp_path, s, eps):
    # NVIDIA Caffe's scale_bias (see the module docstring); OpenCV implements the same.
    weights, feeds = _nvcaffe_case(s)
    _, got, _ = convert_and_compare(tmp_path, _nvcaffe_net(eps), weights, feeds=feeds)
    want = _nvcaffe_reference(feeds["data"], weights["bn"], eps)
    np.testing.assert_allclose(got["bn"], want, atol=1e-4)


def test_nvcaffe_eps_floor(tmp_path):
    """numpy reference: NVIDIA Caffe raises eps to at least 1e-5; OpenCV 4.14 uses 1e-7 as
    given (a 4e-5 difference on this net)."""
    weights, feeds = _nvcaffe_case(2.0)
    _, got, _ = convert_and_run(tmp_path, _nvcaffe_net(1e-7), weights, feeds=feeds)
    want = _nvcaffe_reference(feeds["data"], weights["bn"], 1e-7)
    np.testing.assert_allclose(got["bn"], want, atol=2e-6)


BN = 'layer { name: "bad" type: "BatchNorm" bottom: "data" top: "bn" %s }'


@pytest.mark.parametrize(
    ("param", "blobs", "fragments"),
    [
        (
            "batch_norm_param { use_global_stats: false }",
            3,
            ["use_global_stats: false", "set use_global_stats: true"],
        ),
        ("", 2, ["expected 3 weight blobs (mean*s, var*s, s), the caffemodel has 2"]),
        ("", 4, ["expected 3 weight blobs (mean*s, var*s, s), the caffemodel has 4"]),
        ("", 1, ["missing weight blob 1 (variance): the caffemodel has 1 blob(s)"]),
        ("batch_norm_param { scale_bias: true }", 3, ["expected 5 weight blobs"]),
        ("", "mean-size", ["weight blob 0 (mean) has 5 values", "expected 4"]),
        ("", "factor-size", ["weight blob 2 (moving-average factor) has 2 values"]),
    ],
    ids=[
        "batch-stats",
        "two-blobs",
        "four-blobs",
        "one-blob",
        "scale_bias-count",
        "mean-size",
        "factor-size",
    ],
)
def test_errors(tmp_path, param, blobs, fragments):
    rng = np.random.default_rng(4)
    weights = bn_blobs(rng)
    if blobs == "mean-size":
        weights[0] = np.zeros(C + 1, np.float32)
    elif blobs == "factor-size":
        weights[2] = np.ones(2, np.float32)
    else:
        weights = (weights * 2)[:blobs]
    expect_error(tmp_path, INPUT + BN % param, {"bad": weights}, "bad", *fragments)


def test_missing_caffemodel(tmp_path):
    proto, _ = write_net(tmp_path, INPUT + BN % "")
    with pytest.raises(ConversionError, match=r"layer 'bad' \(BatchNorm\): needs weights"):
        caffe_to_onnx(proto, None)


def test_one_dim_bottom(tmp_path):
    net = 'input: "data"\ninput_shape { dim: 4 }\n' + BN % ""
    expect_error(
        tmp_path,
        net,
        {"bad": bn_blobs(np.random.default_rng(5))},
        "bad",
        "needs a bottom with a channel axis",
    )
