"""Scale and Bias (converters/caffe/layers/scale.py).

Scale is compared with OpenCV DNN at atol 1e-5. OpenCV 4.14 has no Bias layer for Caffe
("Can't create layer ... of type Bias"), so Bias is checked against Caffe's BiasLayer forward in
numpy: the operand spans ``shape[axis : axis + k]`` and is added to every outer/inner position.
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from tests.caffe.helpers import convert_and_compare, write_net
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

SHAPE = (2, 3, 4, 5)
INPUT = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'


def _broadcast(operand: np.ndarray, axis: int, ndim: int = 4) -> np.ndarray:
    """Caffe's operand placed at dims [axis, axis + operand.ndim) of an ndim-D blob."""
    return operand.reshape((1,) * axis + operand.shape + (1,) * (ndim - axis - operand.ndim))


# (scale_param, span axis, operand shape)
ONE_BLOB = {
    "default": ("", 1, (3,)),
    "bias": ("scale_param { bias_term: true }", 1, (3,)),
    "axis1-num_axes2": ("scale_param { axis: 1 num_axes: 2 bias_term: true }", 1, (3, 4)),
    "axis2-to-end": ("scale_param { axis: 2 num_axes: -1 }", 2, (4, 5)),
    "axis0-all": ("scale_param { axis: 0 num_axes: -1 }", 0, SHAPE),
}


@pytest.mark.parametrize("legacy_blobs", [False, True], ids=["shaped-blobs", "legacy-4d-blobs"])
@pytest.mark.parametrize("case", list(ONE_BLOB))
def test_scale_one_blob(tmp_path, case, legacy_blobs):
    param, axis, oshape = ONE_BLOB[case]
    net = INPUT + f'layer {{ name: "sc" type: "Scale" bottom: "data" top: "sc" {param} }}'
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0.5, 1.5, oshape).astype(np.float32)]
    if "bias_term" in param:
        weights.append(rng.normal(0, 1, oshape).astype(np.float32))
    data = rng.standard_normal(SHAPE).astype(np.float32)
    model, got, _ = convert_and_compare(
        tmp_path, net, {"sc": weights}, feeds={"data": data}, legacy_blobs=legacy_blobs
    )
    want = data * _broadcast(weights[0], axis)
    if len(weights) == 2:
        want = want + _broadcast(weights[1], axis)
    np.testing.assert_allclose(got["sc"], want, atol=1e-5)
    assert op_types(model) == ["Mul", "Add"][: len(weights)]


# (bottom 1 shape, scale_param, span axis)
TWO_BOTTOMS = {
    "se-nc-axis0": ((2, 3), "scale_param { axis: 0 }", 0),
    "c-axis1": ((3,), "", 1),
    "chw-axis1": ((3, 4, 5), "scale_param { num_axes: 1 }", 1),  # num_axes ignored
    "hw-axis2": ((4, 5), "scale_param { axis: 2 }", 2),
    "full": (SHAPE, "scale_param { axis: 0 }", 0),
}


@pytest.mark.parametrize("case", list(TWO_BOTTOMS))
def test_scale_two_bottoms(tmp_path, case):
    gshape, param, axis = TWO_BOTTOMS[case]
    net = INPUT + f'input: "g"\ninput_shape {{ {" ".join(f"dim: {d}" for d in gshape)} }}\n'
    net += f'layer {{ name: "sc" type: "Scale" bottom: "data" bottom: "g" top: "sc" {param} }}'
    rng = np.random.default_rng(1)
    feeds = {"data": rng.standard_normal(SHAPE).astype(np.float32),
             "g": rng.standard_normal(gshape).astype(np.float32)}  # fmt: skip
    model, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    np.testing.assert_allclose(got["sc"], feeds["data"] * _broadcast(feeds["g"], axis), atol=1e-5)
    assert op_types(model)[-1] == "Mul"


@pytest.mark.parametrize(
    ("param", "axis", "oshape", "two"),
    [
        ("scale_param { axis: -1 bias_term: true }", 3, (5,), False),
        ("scale_param { axis: -3 num_axes: 2 }", 1, (3, 4), False),
        ("scale_param { num_axes: 0 bias_term: true }", 0, (), False),
        ("scale_param { axis: 2 bias_term: true }", 2, (4, 5), True),
        ("scale_param { bias_term: true }", 1, (3,), True),
        ("scale_param { axis: 0 bias_term: true }", 0, (2, 3), True),
    ],
    ids=[
        "axis-neg",
        "axis-neg-num_axes2",
        "scalar",
        "two-bottoms-bias-hw",
        "two-bottoms-bias-c",
        "two-bottoms-bias-nc",
    ],
)
def test_scale_caffe_only_forms(tmp_path, param, axis, oshape, two):
    """numpy reference, where OpenCV 4.14 departs from Caffe: it does not canonicalise a
    negative Scale axis ('end <= dims'), cannot hold a 0-D gamma (num_axes: 0), and with two
    bottoms plus bias_term returns values matching neither x*g+b nor x*g (Caffe: bias blob 0,
    shaped like bottom 1, added after the product)."""
    rng = np.random.default_rng(4)
    gamma = rng.uniform(0.5, 1.5, oshape).astype(np.float32)
    beta = rng.normal(0, 1, oshape).astype(np.float32)
    feeds = {"data": rng.standard_normal(SHAPE).astype(np.float32)}
    bottoms = 'bottom: "data"'
    if two:
        net = INPUT + f'input: "g"\ninput_shape {{ {" ".join(f"dim: {d}" for d in oshape)} }}\n'
        feeds["g"], bottoms, blobs = gamma, 'bottom: "data" bottom: "g"', [beta]
    else:
        net, blobs = INPUT, [gamma] + [beta] * ("bias_term" in param)
    net += f'layer {{ name: "sc" type: "Scale" {bottoms} top: "sc" {param} }}'
    _, got, _ = convert_and_run(tmp_path, net, {"sc": blobs}, feeds=feeds)
    want = feeds["data"] * _broadcast(gamma, axis)
    if "bias_term" in param:
        want = want + _broadcast(beta, axis)
    np.testing.assert_allclose(got["sc"], want, atol=1e-5)


def test_se_block(tmp_path):
    # Squeeze-and-excitation as Caffe writes it: pool, 1x1 convs, sigmoid, flatten, Scale axis 0.
    net = (
        INPUT
        + """
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "Convolution" bottom: "pool" top: "fc"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }
layer { name: "flat" type: "Flatten" bottom: "fc" top: "w" }
layer { name: "sc" type: "Scale" bottom: "data" bottom: "w" top: "data2" scale_param { axis: 0 } }
"""
    )
    rng = np.random.default_rng(2)
    weights = {"fc": [rng.normal(0, 0.5, (3, 3, 1, 1)).astype(np.float32),
                      rng.normal(0, 0.1, 3).astype(np.float32)]}  # fmt: skip
    convert_and_compare(tmp_path, net, weights)


BIAS_CASES = {
    "default": ("", 1, (3,), False),
    "axis1-num_axes2": ("bias_param { num_axes: 2 }", 1, (3, 4), False),
    "axis-neg": ("bias_param { axis: -2 num_axes: -1 }", 2, (4, 5), False),
    "scalar": ("bias_param { num_axes: 0 }", 0, (), False),
    "two-bottoms-c": ("", 1, (3,), True),
    "two-bottoms-nc-axis0": ("bias_param { axis: 0 }", 0, (2, 3), True),
}


@pytest.mark.parametrize("case", list(BIAS_CASES))
def test_bias(tmp_path, case):
    """numpy reference (OpenCV has no Bias layer, see module docstring)."""
    param, axis, oshape, two = BIAS_CASES[case]
    rng = np.random.default_rng(3)
    beta = rng.normal(0, 1, oshape).astype(np.float32)
    if two:
        net = INPUT + f'input: "b"\ninput_shape {{ {" ".join(f"dim: {d}" for d in oshape)} }}\n'
        net += f'layer {{ name: "bi" type: "Bias" bottom: "data" bottom: "b" top: "out" {param} }}'
        feeds = {"data": rng.standard_normal(SHAPE).astype(np.float32), "b": beta}
        _, got, _ = convert_and_run(tmp_path, net, feeds=feeds)
    else:
        net = INPUT + f'layer {{ name: "bi" type: "Bias" bottom: "data" top: "out" {param} }}'
        feeds = {"data": rng.standard_normal(SHAPE).astype(np.float32)}
        _, got, _ = convert_and_run(tmp_path, net, {"bi": [beta]}, feeds=feeds)
    np.testing.assert_allclose(got["out"], feeds["data"] + _broadcast(beta, axis), atol=1e-6)


SC = 'layer {{ name: "bad" type: "{t}" bottom: "data" {extra} top: "out" {param} }}'


@pytest.mark.parametrize(
    ("kind", "extra", "param", "blobs", "fragments"),
    [
        (
            "Scale",
            "",
            "scale_param { bias_term: true }",
            [(3,)],
            ["missing weight blob 1 (beta): the caffemodel has 1 blob(s)"],
        ),
        (
            "Scale",
            "",
            "",
            [(3,), (3,)],
            ["expected 1 weight blob(s) (gamma) for 1 bottom(s)", "has 2"],
        ),
        ("Scale", "", "", [(4,)], ["weight blob 0 (gamma) has 4 values", "expected 3"]),
        (
            "Scale",
            "",
            "scale_param { axis: 2 num_axes: 3 }",
            [(4,)],
            ["axis 2 + num_axes 3 does not fit a 4-D bottom"],
        ),
        ("Scale", "", "scale_param { num_axes: -2 }", [(3,)], ["num_axes -2"]),
        (
            "Scale",
            'bottom: "g"',
            "scale_param { axis: 1 }",
            [],
            ["bottom 1 'g' has shape [2, 3], expected [3, 4]"],
        ),
        (
            "Scale",
            'bottom: "g"',
            "scale_param { axis: 0 }",
            [(2, 3), (2, 3)],
            ["expected 0 weight blob(s)", "has 2"],
        ),
        ("Scale", 'bottom: "g" bottom: "g"', "", [], ["expected 1 or 2 bottom blobs, got 3"]),
        ("Bias", "", "", [], ["missing weight blob 0 (beta): the caffemodel has 0"]),
        ("Bias", "", "", [(3,), (3,)], ["expected 1 weight blob(s) (beta)"]),
        ("Bias", 'bottom: "g"', "", [(3,)], ["expected 0 weight blob(s) (none)"]),
        ("Bias", "", "bias_param { axis: 4 }", [(3,)], ["bias_param.axis 4 is out of range"]),
    ],
    ids=[
        "scale-beta-missing",
        "scale-extra-blob",
        "gamma-size",
        "span",
        "num_axes",
        "bottom1-shape",
        "two-bottom-blobs",
        "three-bottoms",
        "bias-missing",
        "bias-extra",
        "bias-two-bottom-blob",
        "bias-axis",
    ],
)
def test_errors(tmp_path, kind, extra, param, blobs, fragments):
    net = INPUT + 'input: "g"\ninput_shape { dim: 2 dim: 3 }\n'
    net += SC.format(t=kind, extra=extra, param=param)
    weights = {"bad": [np.ones(s, np.float32) for s in blobs]}
    expect_error(tmp_path, net, weights, "bad", *fragments)


def test_missing_caffemodel(tmp_path):
    proto, _ = write_net(tmp_path, INPUT + SC.format(t="Scale", extra="", param=""))
    with pytest.raises(ConversionError, match=r"layer 'bad' \(Scale\): needs weights"):
        caffe_to_onnx(proto, None)
