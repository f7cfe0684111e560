"""Fork layers and fork parameters (issue 18): ENet/SegNet BN, DepthwiseConvolution, ReLU6's
fork fields, Pooling's argmax mask top and SegNet's mask Upsample (max-unpooling).

References: real Caffe where this build has the layer and its fields (``convert_and_run``
checks it: ReLU6 with ``negative_slope``/``threshold``, Pooling with a mask top), OpenCV DNN
(DepthwiseConvolution is checked against OpenCV running the same weights as a ``group = C``
Convolution), and numpy transcriptions of the forks' own forward passes, written here from their
C++ (SegNet's ``bn_layer.cpp`` INFERENCE
branch, BVLC/SegNet ``pooling_layer.cpp`` MAX with a top mask, SegNet's ``upsample_layer.cpp``,
MobileNet-YOLO's ``relu6_layer.cpp``). The Pooling mask is compared with both: OpenCV returns
a layer's second top through ``forwardAndRetrieve`` (what the build's verifier uses).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

f32 = np.float32
INPUT = 'input: "data" input_dim: {} input_dim: {} input_dim: {} input_dim: {}\n'


# -- ENet / SegNet BN ------------------------------------------------------------------------
BN_NET = INPUT.format(1, 3, 5, 6) + (
    'layer { name: "bn" type: "BN" bottom: "data" top: "data"\n'
    '  bn_param { scale_filler { type: "constant" value: 1 }\n'
    '             shift_filler { type: "constant" value: 0.001 } bn_mode: INFERENCE } }\n'
    'layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }\n'
)


def test_enet_bn_inference_is_per_channel_scale_and_shift(tmp_path):
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.5, 1.5, (1, 3, 1, 1)).astype(f32)
    shift = rng.normal(0, 0.5, (1, 3, 1, 1)).astype(f32)
    model, got, feeds = convert_and_run(tmp_path, BN_NET, {"bn": [scale, shift]})
    # bn_layer.cpp, INFERENCE: top = bottom * scale (broadcast over N, H, W) + shift.
    want = np.maximum(feeds["data"] * scale + shift, 0)
    np.testing.assert_allclose(got["out"], want, rtol=0, atol=1e-6)
    assert op_types(model) == ["Mul", "Add", "Relu"]


def test_enet_bn_learn_mode_is_refused(tmp_path):
    net = BN_NET.replace(" bn_mode: INFERENCE", "")
    w = {"bn": [np.ones((1, 3, 1, 1), f32), np.zeros((1, 3, 1, 1), f32)]}
    expect_error(tmp_path, net, w, "bn", "bn_mode is LEARN", "bn_mode: INFERENCE")


def test_enet_bn_blob_of_wrong_size_is_refused(tmp_path):
    w = {"bn": [np.ones((1, 4, 1, 1), f32), np.zeros((1, 3, 1, 1), f32)]}
    expect_error(tmp_path, BN_NET, w, "bn", "blob 0 (scale) has 4 values")


# -- DepthwiseConvolution ---------------------------------------------------------------------
def _dw_net(layer_type: str, group: str) -> str:
    return INPUT.format(1, 4, 9, 8) + (
        f'layer {{ name: "dw" type: "{layer_type}" bottom: "data" top: "dw"\n'
        f"  convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 stride: 2 {group} }} }}\n"
    )


def test_depthwise_convolution_alias_matches_grouped_convolution_in_opencv(tmp_path):
    rng = np.random.default_rng(2)
    w = {"dw": [rng.standard_normal((4, 1, 3, 3)).astype(f32), rng.standard_normal(4).astype(f32)]}
    # The reference: OpenCV running the same weights as an explicit group = C Convolution.
    _, _, want = convert_and_compare(tmp_path, _dw_net("Convolution", "group: 4"), w)
    (tmp_path / "alias").mkdir()
    # MobileNet-YOLO writes no group at all: the layer type alone makes it depthwise.
    model, got, _ = convert_and_run(
        tmp_path / "alias", _dw_net("DepthwiseConvolution", ""), w, seed=0
    )
    np.testing.assert_allclose(got["dw"], want["dw"], rtol=0, atol=1e-5)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert next(a.i for a in conv.attribute if a.name == "group") == 4


# -- ReLU6 fork fields ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("param", "slope", "top"),
    [("", 0.0, 6.0), ("relu6_param { negative_slope: 0.1 }", 0.1, 6.0),
     ("relu6_param { threshold: 3 }", 0.0, 3.0)],
    ids=["plain", "negative-slope", "threshold"],
)  # fmt: skip
def test_relu6_fork_fields(tmp_path, param, slope, top):
    net = INPUT.format(1, 2, 3, 4) + (
        f'layer {{ name: "r6" type: "ReLU6" bottom: "data" top: "out" {param} }}\n'
    )
    x = np.linspace(-10, 10, 24, dtype=f32).reshape(1, 2, 3, 4)
    _, got, _ = convert_and_run(tmp_path, net, feeds={"data": x})
    # relu6_layer.cpp: min(max(x, 0) + negative_slope * min(x, 0), 6); threshold replaces 6.
    want = np.minimum(np.maximum(x, 0) + f32(slope) * np.minimum(x, 0), f32(top))
    np.testing.assert_allclose(got["out"], want, rtol=0, atol=1e-6)


# -- Pooling with an argmax mask, SegNet unpooling ---------------------------------------------
def _caffe_pool_size(size, k, s, p):
    out = math.ceil((size + 2 * p - k) / s) + 1
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


def _caffe_max_pool_with_mask(x, k, s, p):
    """pooling_layer.cpp MAX with a top mask: first maximum wins, index h * W + w per plane."""
    n, c, h, w = x.shape
    oh, ow = _caffe_pool_size(h, k, s, p), _caffe_pool_size(w, k, s, p)
    top = np.full((n, c, oh, ow), -np.finfo(f32).max, f32)
    mask = np.full((n, c, oh, ow), -1, f32)
    for b in range(n):
        for ch in range(c):
            for ph in range(oh):
                hs, he = max(ph * s - p, 0), min(ph * s - p + k, h)
                for pw in range(ow):
                    ws, we = max(pw * s - p, 0), min(pw * s - p + k, w)
                    for i in range(hs, he):
                        for j in range(ws, we):
                            if x[b, ch, i, j] > top[b, ch, ph, pw]:
                                top[b, ch, ph, pw] = x[b, ch, i, j]
                                mask[b, ch, ph, pw] = i * w + j
    return top, mask


def _segnet_unpool(x, mask, oh, ow):
    """SegNet upsample_layer.cpp Forward_cpu: zeros, then top[mask[i]] = bottom[i] per plane."""
    n, c = x.shape[:2]
    top = np.zeros((n, c, oh * ow), f32)
    for b in range(n):
        for ch in range(c):
            for i, idx in enumerate(mask[b, ch].ravel()):
                top[b, ch, int(idx)] = x[b, ch].ravel()[i]
    return top.reshape(n, c, oh, ow)


def _pool_net(shape, pool, upsample=None):
    net = INPUT.format(*shape) + (
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "mask"\n'
        f"  pooling_param {{ pool: MAX {pool} }} }}\n"
    )
    if upsample is not None:  # decoder features differ from the pooled values, as in SegNet
        net += (
            'layer { name: "dec" type: "Power" bottom: "pool" top: "dec"\n'
            "  power_param { scale: -2 shift: 0.5 } }\n"
            'layer { name: "up" type: "Upsample" bottom: "dec" bottom: "mask" top: "up"\n'
            f"  upsample_param {{ {upsample} }} }}\n"
        )
    return net


@pytest.mark.parametrize(
    ("shape", "pool", "k", "s", "p"),
    [((1, 2, 8, 6), "kernel_size: 2 stride: 2", 2, 2, 0),
     ((2, 3, 7, 9), "kernel_size: 3 stride: 2 pad: 1", 3, 2, 1),
     ((1, 2, 7, 5), "kernel_size: 2 stride: 2", 2, 2, 0)],
    ids=["even", "overlap-pad-ceil", "odd-ceil"],
)  # fmt: skip
def test_pooling_mask_top(tmp_path, shape, pool, k, s, p):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(f32)
    x[0, 0, :2, :2] = 1.5  # ties: the first maximum in row-major order wins, as in Caffe
    _, got, _ = convert_and_run(tmp_path, _pool_net(shape, pool), feeds={"data": x})
    top, mask = _caffe_max_pool_with_mask(x, k, s, p)
    np.testing.assert_array_equal(got["pool"], top)
    np.testing.assert_array_equal(got["mask"], mask)
    from pipelines.runtimes.opencv import OpenCvCaffeRunner

    opencv = OpenCvCaffeRunner(tmp_path / "net.prototxt", tmp_path / "net.caffemodel")
    want = opencv.run({"data": x}, ["pool", "mask"])
    np.testing.assert_array_equal(got["pool"], want["pool"])
    np.testing.assert_array_equal(got["mask"], want["mask"])


@pytest.mark.parametrize(
    ("shape", "upsample", "out_hw"),
    [((1, 2, 8, 6), "scale: 2", (8, 6)),
     ((2, 3, 7, 9), "upsample_h: 7 upsample_w: 9", (7, 9)),
     ((1, 2, 7, 9), "scale: 2 pad_out_h: true pad_out_w: true", (7, 9))],
    ids=["scale", "upsample-hw-odd", "pad-out"],
)  # fmt: skip
def test_segnet_unpooling(tmp_path, shape, upsample, out_hw):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(f32)
    net = _pool_net(shape, "kernel_size: 2 stride: 2", upsample)
    # Not real Caffe: its Upsample is the YOLO ports' nearest-neighbour layer, which ignores a
    # mask bottom (measured: the 2x2 blocks repeat); SegNet's layer of the same name unpools.
    model, got, _ = convert_and_run(tmp_path, net, feeds={"data": x}, caffe=False)
    top, mask = _caffe_max_pool_with_mask(x, 2, 2, 0)
    dec = top * f32(-2) + f32(0.5)
    np.testing.assert_array_equal(got["up"], _segnet_unpool(dec, mask, *out_hw))
    assert "MaxUnpool" in op_types(model)


def test_max_unpool_matches_real_caffe(tmp_path):
    # brocolli-caffe's MaxUnPool: real Caffe has it, so convert_and_run compares with it too
    # (measured: it agrees with the SegNet transcription above, bit for bit).
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 9)).astype(f32)
    net = (
        _pool_net((2, 3, 7, 9), "kernel_size: 2 stride: 2", "scale: 2")
        .replace('type: "Upsample"', 'type: "MaxUnPool"')
        .replace("upsample_param { scale: 2 }", "max_unpool_param { dst_h: 7 dst_w: 9 }")
    )
    model, got, _ = convert_and_run(tmp_path, net, feeds={"data": x})
    top, mask = _caffe_max_pool_with_mask(x, 2, 2, 0)
    want = _segnet_unpool(top * f32(-2) + f32(0.5), mask, 7, 9)
    np.testing.assert_array_equal(got["up"], want)
    assert "MaxUnpool" in op_types(model)
    expect_error(tmp_path / "bad", net.replace(" dst_w: 9", ""), None, "up", "needs max_unpool")


def test_unpooling_an_overlapping_pooling_mask_is_refused(tmp_path):
    net = _pool_net((1, 2, 7, 9), "kernel_size: 3 stride: 2", "upsample_h: 7 upsample_w: 9")
    expect_error(tmp_path, net, None, "up", "windows overlap", "non-overlapping")


def test_unpooling_to_another_size_than_the_pooled_input_is_refused(tmp_path):
    # 7x9 pooled by 2: scale 2 alone gives 8x10, where the mask's h * 9 + w lands elsewhere.
    net = _pool_net((1, 2, 7, 9), "kernel_size: 2 stride: 2", "scale: 2")
    expect_error(tmp_path, net, None, "up", "unpools to 8x10", "indexes the 7x9 input of "
                 "pooling layer 'pool'", "upsample_h: 7 upsample_w: 9")  # fmt: skip


def test_mask_top_of_average_pooling_is_refused(tmp_path):
    net = _pool_net((1, 2, 8, 6), "kernel_size: 2 stride: 2").replace("MAX", "AVE")
    expect_error(tmp_path, net, None, "pool", "needs pool: MAX")
