"""MaxPool / AveragePool / Global*Pool -> Caffe Pooling: exact output shapes and values.

The edge cases are the ones where converters go wrong: ceil-mode outputs, AVE divisors at the
borders (Caffe counts padding up to ``H + p`` but not the ceil overhang), asymmetric pads, and
geometries Caffe cannot express at all (refused with one line naming the node).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node


def _pool(op, shape, **attrs):
    return make_model([node(op, ["x"], "y", **attrs)], {"x": shape}, ["y"])


def _pooling_params(model):
    net, _ = build_net(model)
    return [layer.pooling_param for layer in net.layer if layer.type == "Pooling"]


@pytest.mark.parametrize(
    ("op", "shape", "attrs"),
    [
        ("MaxPool", (1, 3, 10, 10), dict(kernel_shape=[2, 2], strides=[2, 2])),
        ("MaxPool", (1, 2, 22, 22), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
        ("MaxPool", (1, 2, 22, 22), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])),
        ("MaxPool", (1, 2, 9, 11), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1])),
        ("MaxPool", (1, 2, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
        ("MaxPool", (1, 2, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
        ("AveragePool", (1, 2, 6, 6), dict(kernel_shape=[2, 2], strides=[2, 2])),
        ("AveragePool", (1, 2, 7, 7), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                           count_include_pad=1)),
        ("AveragePool", (1, 2, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                           count_include_pad=1, ceil_mode=1)),
        ("AveragePool", (1, 2, 7, 7), dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
        ("AveragePool", (1, 2, 7, 5), dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                                           count_include_pad=1)),
    ],
)  # fmt: skip
def test_pooling_matches(tmp_path, op, shape, attrs):
    convert_and_compare(tmp_path, _pool(op, shape, **attrs))


def test_ceil_overhang_uses_caffe_ceil(tmp_path):
    """ONNX floor + an end pad of 1 is Caffe's default CEIL without pads (MTCNN's pools)."""
    model = _pool("MaxPool", (1, 2, 22, 22), kernel_shape=[3, 3], strides=[2, 2],
                  pads=[0, 0, 1, 1])  # fmt: skip
    (param,) = _pooling_params(model)
    assert (param.pad, param.HasField("ceil_mode")) == (0, False)
    got, _ = convert_and_compare(tmp_path, model)
    assert got["y"].shape == (1, 2, 11, 11)


def test_floor_is_ceil_plus_crop(tmp_path):
    """5 -> 2 windows of 2 (stride 2): Caffe's CEIL adds a third window, which is cropped;
    no rounding field is written (BVLC and the OpenCV fork spell FLOOR differently)."""
    model = _pool("AveragePool", (1, 2, 5, 5), kernel_shape=[2, 2], strides=[2, 2])
    (param,) = _pooling_params(model)
    assert not param.HasField("ceil_mode") and not param.HasField("round_mode")
    got, _ = convert_and_compare(tmp_path, model)
    assert got["y"].shape == (1, 2, 2, 2)


def test_asymmetric_pads_are_cropped(tmp_path):
    """Pads (0, 1) with stride 1: Caffe pads 1 on both sides and the first row is cropped."""
    model = _pool("MaxPool", (1, 2, 6, 6), kernel_shape=[2, 2], strides=[1, 1],
                  pads=[0, 0, 1, 1])  # fmt: skip
    net, _ = build_net(model)
    types = [layer.type for layer in net.layer]
    assert types.count("Slice") == 2 and "Silence" in types
    convert_and_compare(tmp_path, model)


def test_ave_divisor_with_pad_counts_padding(tmp_path):
    """count_include_pad=1 with symmetric pads is Caffe's own AVE rule: corner = sum / 9."""
    model = _pool("AveragePool", (1, 1, 4, 4), kernel_shape=[3, 3], strides=[2, 2],
                  pads=[1, 1, 1, 1], count_include_pad=1)  # fmt: skip
    ones = {"x": np.ones((1, 1, 4, 4), np.float32)}
    got, _ = convert_and_compare(tmp_path, model, feeds=ones)
    assert got["y"][0, 0, 0, 0] == pytest.approx(4 / 9)


def test_global_pools(tmp_path):
    model = make_model(
        [node("GlobalAveragePool", ["x"], "a"), node("GlobalMaxPool", ["x"], "m")],
        {"x": (2, 3, 5, 7)}, ["a", "m"],
    )  # fmt: skip
    convert_and_compare(tmp_path, model)


def test_ave_excluding_pads_is_rescaled(tmp_path):
    """count_include_pad=0 with pads: Caffe always counts the padding, so a Scale with one
    factor per output position (Caffe divisor / ONNX divisor) follows the pooling."""
    model = _pool("AveragePool", (1, 2, 6, 7), kernel_shape=[3, 3], strides=[1, 1],
                  pads=[1, 1, 1, 1], count_include_pad=0)  # fmt: skip
    net, _ = build_net(model)
    (scale,) = [layer for layer in net.layer if layer.type == "Scale"]
    assert (scale.scale_param.axis, scale.scale_param.num_axes) == (2, 2)
    ones = {"x": np.ones((1, 2, 6, 7), np.float32)}
    got, _ = convert_and_compare(tmp_path, model, feeds=ones)
    np.testing.assert_allclose(got["y"], 1.0, atol=1e-6)  # a true mean of ones is one
    convert_and_compare(tmp_path, model)


def test_refuses_window_in_padding(tmp_path):
    """An end pad as large as the kernel: the last window holds no input value at all."""
    model = _pool("MaxPool", (1, 2, 5, 5), kernel_shape=[2, 2], pads=[0, 0, 2, 2])
    with pytest.raises(ConversionError) as err:
        convert_and_compare(tmp_path, model)
    msg = str(err.value)
    assert msg.startswith("Caffe export: node 'maxpool_y' (MaxPool): Caffe cannot express this "
                          "pooling") and "pools only padding" in msg and "\n" not in msg  # fmt: skip
    assert not list(tmp_path.iterdir())  # nothing written


def test_refuses_ambiguous_ceil_output(tmp_path):
    """ceil_mode where the last window starts in the end padding: onnxruntime drops it, ONNX
    shape inference keeps it; the model's own shapes are inconsistent, so it is refused."""
    model = _pool("MaxPool", (1, 1, 4, 4), kernel_shape=[2, 2], strides=[3, 3],
                  pads=[1, 1, 1, 1], ceil_mode=1)  # fmt: skip
    with pytest.raises(
        ConversionError,
        match=r"'maxpool_y' \(MaxPool\): onnxruntime computes a "
        r"2x2 output, ONNX shape inference says 3x3",
    ):
        build_net(model)


def test_refuses_dilated_pooling(tmp_path):
    model = _pool("MaxPool", (1, 2, 9, 9), kernel_shape=[2, 2], dilations=[2, 2])
    with pytest.raises(ConversionError, match="dilated pooling"):
        build_net(model)


def test_geometry_sweep_is_exact_or_refused(tmp_path):
    """Every small geometry either matches onnxruntime exactly or is refused: never wrong."""
    outcomes = {"ok": 0, "refused": 0}
    for h, k, s, (pb, pe), ceil, kind in itertools.product(
        [5, 6, 7], [2, 3], [1, 2, 3], [(0, 0), (1, 1), (0, 1), (1, 0)], [0, 1],
        ["max", "ave_incl", "ave_excl"],
    ):  # fmt: skip
        attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[pb, pb, pe, pe], ceil_mode=ceil)
        if kind != "max":
            attrs["count_include_pad"] = int(kind == "ave_incl")
        model = _pool("MaxPool" if kind == "max" else "AveragePool", (1, 2, h, h + 1), **attrs)
        try:
            convert_and_compare(tmp_path, model)
            outcomes["ok"] += 1
        except ConversionError as exc:
            assert "\n" not in str(exc) and "shape inference says" in str(exc)
            outcomes["refused"] += 1
    # The refusals are the geometries whose ceil-mode output size onnxruntime and ONNX shape
    # inference disagree on; every other one converts exactly.
    assert outcomes["ok"] > 350 and outcomes["refused"] > 10, outcomes
