"""fold_batchnorm: BatchNormalization / per-channel Mul-Add-Sub-Div chains into the linear op."""

from __future__ import annotations

import numpy as np
from onnx import helper

from converters.caffe.convert import caffe_to_onnx
from converters.passes import run_passes
from tests.caffe.helpers import run_opencv, run_ort, write_net
from tests.passes.helpers import assert_same_outputs, make_model, ops, rng_array

C = 4


def _bn_inits(prefix: str = "bn", c: int = C, seed: int = 1) -> dict:
    return {
        f"{prefix}_g": rng_array((c,), 0.6, seed, low=0.7),
        f"{prefix}_b": rng_array((c,), 0.2, seed + 1),
        f"{prefix}_m": rng_array((c,), 0.3, seed + 2),
        f"{prefix}_v": rng_array((c,), 1.0, seed + 3, low=0.5),
    }


def _bn(x: str, y: str, prefix: str = "bn", **attrs):
    ins = [x, f"{prefix}_g", f"{prefix}_b", f"{prefix}_m", f"{prefix}_v"]
    return helper.make_node("BatchNormalization", ins, [y], epsilon=1e-3, **attrs)


def _conv_bn_scale(bias: bool = True):
    """Conv -> BatchNormalization -> Mul(gamma) -> Add(beta) -> Relu, as Caffe BN+Scale give."""
    inits = {"W": rng_array((C, 3, 3, 3), 0.3), **_bn_inits()}
    inits |= {"gamma": rng_array((C, 1, 1), 0.5, 7, low=0.8), "beta": rng_array((C, 1, 1), 0.3, 8)}
    conv_in = ["x", "W"]
    if bias:
        inits["B"] = rng_array((C,), 0.1, 9)
        conv_in.append("B")
    nodes = [
        helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]),
        _bn("c", "n"),
        helper.make_node("Mul", ["n", "gamma"], ["s"]),
        helper.make_node("Add", ["s", "beta"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    return make_model(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, C, 8, 8]}, inits)


def test_conv_bn_scale_folds_to_one_conv():
    before = _conv_bn_scale()
    after = run_passes(before, ["fold_batchnorm"])
    assert ops(before) == {"Conv": 1, "BatchNormalization": 1, "Mul": 1, "Add": 1, "Relu": 1}
    assert ops(after) == {"Conv": 1, "Relu": 1}
    assert_same_outputs(before, after, atol=1e-5)


def test_conv_without_bias_gets_one():
    before = _conv_bn_scale(bias=False)
    after = run_passes(before, ["fold_batchnorm"])
    assert ops(after) == {"Conv": 1, "Relu": 1}
    assert len(after.graph.node[0].input) == 3
    assert_same_outputs(before, after)


def test_sub_div_spelling_and_folded_output_keeps_its_name():
    """BatchNorm emitted as Sub(mean) / Div(std), ending at a graph output."""
    inits = {"W": rng_array((C, 3, 1, 1)), "m": rng_array((1, C, 1, 1), 0.3, 2),
             "d": rng_array((C, 1, 1), 1.0, 3, low=0.5), "k": np.float32(1.5)}  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Sub", ["c", "m"], ["s"]),
        helper.make_node("Div", ["s", "d"], ["q"]),
        helper.make_node("Mul", ["k", "q"], ["out"]),  # scalar, constant first
    ]
    before = make_model(nodes, {"x": [1, 3, 5, 5]}, {"out": [1, C, 5, 5]}, inits)
    after = run_passes(before, ["fold_batchnorm"])
    assert ops(after) == {"Conv": 1}
    assert after.graph.node[0].output[0] == "out"
    assert_same_outputs(before, after)


def test_grouped_conv_transpose():
    group, c_in, c_out = 2, 4, 6
    inits = {"W": rng_array((c_in, c_out // group, 3, 3), 0.3), "B": rng_array((c_out,), 0.1, 4)}
    inits |= _bn_inits(c=c_out)
    nodes = [
        helper.make_node("ConvTranspose", ["x", "W", "B"], ["c"], group=group, strides=[2, 2]),
        _bn("c", "y"),
    ]
    before = make_model(nodes, {"x": [1, c_in, 4, 4]}, {"y": [1, c_out, 9, 9]}, inits)
    after = run_passes(before, ["fold_batchnorm"])
    assert ops(before)["BatchNormalization"] == 1
    assert ops(after) == {"ConvTranspose": 1}
    assert_same_outputs(before, after)


def test_gemm_both_weight_layouts_with_beta():
    for trans_b, w_shape in ((1, (C, 6)), (0, (6, C))):
        inits = {"W": rng_array(w_shape), "B": rng_array((C,), 0.5, 2), **_bn_inits()}
        inits["k"] = rng_array((1, C), 1.0, 3, low=0.5)
        nodes = [
            helper.make_node("Gemm", ["x", "W", "B"], ["g"], transB=trans_b, alpha=0.5, beta=2.0),
            _bn("g", "n"),
            helper.make_node("Mul", ["n", "k"], ["y"]),
        ]
        before = make_model(nodes, {"x": [3, 6]}, {"y": [3, C]}, inits)
        after = run_passes(before, ["fold_batchnorm"])
        assert ops(after) == {"Gemm": 1}, trans_b
        assert_same_outputs(before, after)


def _not_fired(model, expected_reason: str):
    report: list[str] = []
    after = run_passes(model, ["fold_batchnorm"], report)
    assert ops(after) == ops(model)
    assert any(expected_reason in r for r in report), report
    assert_same_outputs(model, after, atol=0)


def test_not_constant_parameters():
    m = _conv_bn_scale()
    g = m.graph
    var = next(t for t in g.initializer if t.name == "bn_v")
    g.initializer.remove(var)
    g.input.append(helper.make_tensor_value_info("bn_v", 1, [C]))
    report: list[str] = []
    after = run_passes(m, ["fold_batchnorm"], report)
    assert ops(after)["BatchNormalization"] == 1
    assert any("BatchNormalization parameters are not constants" in r for r in report), report
    feeds = {"x": rng_array((1, 3, 8, 8)), "bn_v": rng_array((C,), 1.0, 5, low=0.5)}
    np.testing.assert_array_equal(run_ort(after, feeds)["y"], run_ort(m, feeds)["y"])


def test_conv_output_with_another_consumer():
    inits = {"W": rng_array((C, 3, 1, 1)), **_bn_inits()}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        _bn("c", "n"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Add", ["n", "r"], ["y"]),
    ]
    model = make_model(nodes, {"x": [1, 3, 4, 4]}, {"y": [1, C, 4, 4]}, inits)
    report: list[str] = []
    after = run_passes(model, ["fold_batchnorm"], report)
    assert ops(after) == ops(model)
    assert any("its output has other consumers" in r for r in report), report
    assert_same_outputs(model, after, atol=0)


def test_per_pixel_constant_and_residual_add_are_left():
    inits = {"W": rng_array((C, 3, 1, 1)), "p": rng_array((1, 1, 4, 4), 1.0, 2)}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Mul", ["c", "p"], ["y"]),
    ]
    model = make_model(nodes, {"x": [1, 3, 4, 4]}, {"y": [1, C, 4, 4]}, inits)
    _not_fired(model, "operand has shape [1, 1, 4, 4], not per channel")
    nodes[1] = helper.make_node("Add", ["c", "x2"], ["y"])
    model = make_model(nodes, {"x": [1, 3, 4, 4], "x2": [1, C, 4, 4]}, {"y": [1, C, 4, 4]},
                       {"W": inits["W"]})  # fmt: skip
    _not_fired(model, "Add operand 'x2' is not a constant")


def test_caffe_batchnorm_scale_against_opencv(tmp_path):
    """The real Caffe spelling: folded model still equals OpenCV running the Caffe files."""
    proto = """
    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 3 dim: 9 dim: 9 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
            convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false } }
    layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
    layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
    layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
    """
    weights = {
        "conv": [rng_array((C, 3, 3, 3), 0.3)],
        "bn": [rng_array((C,), 0.3, 2) * 0.9, rng_array((C,), 1.0, 3, low=0.5) * 0.9,
               np.array([0.9], np.float32)],
        "sc": [rng_array((C,), 0.5, 4, low=0.8), rng_array((C,), 0.3, 5)],
    }  # fmt: skip
    proto_path, model_path = write_net(tmp_path, proto, weights)
    before = caffe_to_onnx(proto_path, model_path)
    after = run_passes(before)
    assert ops(after) == {"Conv": 1, "Relu": 1}
    x = rng_array((1, 3, 9, 9), seed=11)
    got = run_ort(after, {"data": x})["conv"]
    want = run_opencv(proto_path, model_path, {"data": x}, ["conv"])["conv"]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
