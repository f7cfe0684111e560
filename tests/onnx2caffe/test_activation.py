"""ReLU family, Sigmoid, TanH, ELU, Clip -> ReLU6, PReLU, unary maths ops."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node

SHAPE = (1, 3, 4, 5)


def _unary(op, inits=None, extra_inputs=(), opset=17, **attrs):
    return make_model([node(op, ["x", *extra_inputs], "y", **attrs)], {"x": SHAPE}, ["y"],
                      inits, opset=opset)  # fmt: skip


def _wide_feeds(positive=False):
    x = np.linspace(-8, 8, int(np.prod(SHAPE)), dtype=np.float32).reshape(SHAPE)
    return {"x": np.abs(x) + 0.1 if positive else x}


@pytest.mark.parametrize(
    ("op", "attrs", "caffe_type"),
    [
        ("Relu", {}, "ReLU"),
        ("LeakyRelu", dict(alpha=0.2), "ReLU"),
        ("Sigmoid", {}, "Sigmoid"),
        ("Tanh", {}, "TanH"),
        ("Elu", dict(alpha=0.7), "ELU"),
        ("Abs", {}, "AbsVal"),
        ("Exp", {}, "Exp"),
        ("Neg", {}, "Power"),
    ],
)
def test_activation_matches(tmp_path, op, attrs, caffe_type):
    model = _unary(op, **attrs)
    net, _ = build_net(model)
    assert net.layer[-1].type == caffe_type
    convert_and_compare(tmp_path, model, feeds=_wide_feeds(), atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("op", ["Log", "Sqrt", "Reciprocal"])
def test_positive_domain_ops(tmp_path, op):
    convert_and_compare(tmp_path, _unary(op), feeds=_wide_feeds(positive=True), rtol=1e-6)


@pytest.mark.parametrize(("bounds", "caffe_type"), [((0.0, 6.0), "ReLU6"), ((0.0, None), "ReLU")])
def test_clip(tmp_path, bounds, caffe_type):
    inits = {"lo": np.array(bounds[0], np.float32)}
    extra = ["lo"]
    if bounds[1] is not None:
        inits["hi"] = np.array(bounds[1], np.float32)
        extra.append("hi")
    model = _unary("Clip", inits, extra)
    net, _ = build_net(model)
    assert net.layer[-1].type == caffe_type
    convert_and_compare(tmp_path, model, feeds=_wide_feeds())


def test_clip_opset10_attributes(tmp_path):
    convert_and_compare(tmp_path, _unary("Clip", opset=10, min=0.0, max=6.0), feeds=_wide_feeds())


def test_refuses_other_clip_bounds():
    inits = {"lo": np.array(-1, np.float32), "hi": np.array(1, np.float32)}
    with pytest.raises(ConversionError, match=r"'clip_y' \(Clip\): Clip\(-1.0, 1.0\) has no"):
        build_net(_unary("Clip", inits, ["lo", "hi"]))


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1, 3, 1, 1), (1,), ()])
def test_prelu(tmp_path, slope_shape):
    slope = np.random.default_rng(1).uniform(0, 0.5, slope_shape).astype(np.float32)
    model = _unary("PRelu", {"s": slope}, ["s"])
    convert_and_compare(tmp_path, model)


def test_refuses_prelu_slope_not_per_channel():
    """A (C,) slope broadcasts over the LAST axis in ONNX: per column, not per channel."""
    slope = np.full(5, 0.1, np.float32)
    with pytest.raises(ConversionError, match=r"'prelu_y' \(PRelu\): slope shape \[5\]"):
        build_net(_unary("PRelu", {"s": slope}, ["s"]))
