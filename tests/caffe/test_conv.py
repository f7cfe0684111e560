"""Convolution, ConvolutionDepthwise and Deconvolution (converters/caffe/layers/conv.py).

Compared with OpenCV DNN at atol 1e-5. Every geometry is also checked against a float64 numpy
transcription of Caffe's im2col convolution (``conv_layer.cpp``: ``out = floor((in + 2p -
(d(k-1)+1)) / s) + 1``) and of its transpose (``deconv_layer.cpp``: col2im scatter,
``out = s(in-1) + d(k-1) + 1 - 2p``), so a shape or layout error cannot hide behind both
runtimes agreeing with each other.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types


def _net(shape, type_name: str, param: str) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (
        f'input: "data"\ninput_shape {{ {dims} }}\n'
        f'layer {{ name: "conv" type: "{type_name}" bottom: "data" top: "conv" '
        f"convolution_param {{ {param} }} }}"
    )


def _weights(w_shape, num_output: int, bias: bool, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    blobs = [rng.standard_normal(w_shape).astype(np.float32)]
    if bias:
        blobs.append(rng.standard_normal(num_output).astype(np.float32))
    return blobs


def _caffe_conv(x, w, b, stride, pad, dil, group):
    """Caffe's Convolution forward: each output pixel is a dot product over its dilated window."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
    oh = (h + 2 * pad[0] - (dil[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (wd + 2 * pad[1] - (dil[1] * (kw - 1) + 1)) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    og = o // group
    for g in range(group):
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dil[0], j * dil[1]
                patch = xs[:, :, r0 : r0 + stride[0] * (oh - 1) + 1 : stride[0],
                           c0 : c0 + stride[1] * (ow - 1) + 1 : stride[1]]  # fmt: skip
                wg = w[g * og : (g + 1) * og, :, i, j].astype(np.float64)
                y[:, g * og : (g + 1) * og] += np.einsum("nchw,oc->nohw", patch, wg)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _caffe_deconv(x, w, b, stride, pad, dil, group):
    """Caffe's Deconvolution forward: every input pixel scatters ``w`` into the output (col2im)."""
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    full_h = stride[0] * (h - 1) + dil[0] * (kh - 1) + 1
    full_w = stride[1] * (wd - 1) + dil[1] * (kw - 1) + 1
    y = np.zeros((n, og * group, full_h, full_w))
    cg = c // group
    for g in range(group):
        xs = x[:, g * cg : (g + 1) * cg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                wg = w[g * cg : (g + 1) * cg, :, i, j].astype(np.float64)
                r0, c0 = i * dil[0], j * dil[1]
                y[:, g * og : (g + 1) * og, r0 : r0 + stride[0] * (h - 1) + 1 : stride[0],
                  c0 : c0 + stride[1] * (wd - 1) + 1 : stride[1]] += np.einsum(
                    "nchw,co->nohw", xs, wg)  # fmt: skip
    y = y[:, :, pad[0] : full_h - pad[0], pad[1] : full_w - pad[1]]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


# id: (input shape, convolution_param, weight shape, stride, pad, dilation, group, output shape)
CONV = {
    "plain": ((2, 3, 7, 8), "num_output: 4 kernel_size: 3", (4, 3, 3, 3),
              (1, 1), (0, 0), (1, 1), 1, (2, 4, 5, 6)),
    "group": ((1, 4, 6, 6), "num_output: 6 kernel_size: 3 pad: 1 group: 2", (6, 2, 3, 3),
              (1, 1), (1, 1), (1, 1), 2, (1, 6, 6, 6)),
    "dilation": ((1, 3, 9, 9), "num_output: 2 kernel_size: 3 dilation: 2", (2, 3, 3, 3),
                 (1, 1), (0, 0), (2, 2), 1, (1, 2, 5, 5)),
    "dilation-hw": ((1, 2, 9, 10), "num_output: 2 kernel_size: 3 dilation: 2 dilation: 3 pad: 2",
                    (2, 2, 3, 3), (1, 1), (2, 2), (2, 3), 1, (1, 2, 9, 8)),
    "kernel-h-w": ((1, 3, 7, 8), "num_output: 3 kernel_h: 3 kernel_w: 1", (3, 3, 3, 1),
                   (1, 1), (0, 0), (1, 1), 1, (1, 3, 5, 8)),
    "stride-h-w": ((1, 3, 9, 8), "num_output: 2 kernel_size: 3 stride_h: 2 stride_w: 3",
                   (2, 3, 3, 3), (2, 3), (0, 0), (1, 1), 1, (1, 2, 4, 2)),
    "pad-h-w": ((1, 3, 5, 6), "num_output: 2 kernel_size: 3 pad_h: 1 pad_w: 2", (2, 3, 3, 3),
                (1, 1), (1, 2), (1, 1), 1, (1, 2, 5, 8)),
    "kernel-size-2-values": ((1, 2, 7, 7), "num_output: 2 kernel_size: 3 kernel_size: 2 "
                             "stride: 2 stride: 1 pad: 1 pad: 0", (2, 2, 3, 2),
                             (2, 1), (1, 0), (1, 1), 1, (1, 2, 4, 6)),
    "stride-floor": ((1, 2, 8, 8), "num_output: 3 kernel_size: 3 stride: 2", (3, 2, 3, 3),
                     (2, 2), (0, 0), (1, 1), 1, (1, 3, 3, 3)),
    "no-bias": ((1, 3, 5, 5), "num_output: 2 kernel_size: 3 bias_term: false", (2, 3, 3, 3),
                (1, 1), (0, 0), (1, 1), 1, (1, 2, 3, 3)),
    "group-dilation-stride-pad": ((1, 6, 11, 10), "num_output: 9 kernel_size: 3 group: 3 "
                                  "dilation: 2 stride: 2 pad: 2", (9, 2, 3, 3),
                                  (2, 2), (2, 2), (2, 2), 3, (1, 9, 6, 5)),
    "1x1": ((2, 5, 3, 4), "num_output: 7 kernel_size: 1", (7, 5, 1, 1),
            (1, 1), (0, 0), (1, 1), 1, (2, 7, 3, 4)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CONV))
def test_convolution(tmp_path, case):
    shape, param, w_shape, stride, pad, dil, group, out_shape = CONV[case]
    num_output = w_shape[0]
    weights = _weights(w_shape, num_output, bias="bias_term: false" not in param)
    model, got, _ = convert_and_compare(
        tmp_path, _net(shape, "Convolution", param), {"conv": weights}
    )
    assert got["conv"].shape == out_shape
    assert op_types(model) == ["Conv"]
    assert len(model.graph.node[0].input) == len(weights) + 1
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)  # the seeded feed
    b = weights[1] if len(weights) == 2 else None
    ref = _caffe_conv(x, weights[0], b, stride, pad, dil, group)
    np.testing.assert_allclose(got["conv"], ref, atol=1e-5)


# id: (input shape, convolution_param, weight shape, stride, pad)
DEPTHWISE = {
    "pad": ((1, 4, 7, 7), "num_output: 4 kernel_size: 3 pad: 1", (4, 1, 3, 3), (1, 1), (1, 1)),
    "stride-no-bias": ((2, 3, 8, 9), "num_output: 3 kernel_size: 3 stride: 2 bias_term: false",
                       (3, 1, 3, 3), (2, 2), (0, 0)),
    "multiplier-2": ((1, 3, 5, 6), "num_output: 6 kernel_size: 3", (6, 1, 3, 3), (1, 1), (0, 0)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DEPTHWISE))
def test_convolution_depthwise(tmp_path, case):
    """The fork's ConvolutionDepthwise is a Convolution with group = input channels."""
    shape, param, w_shape, stride, pad = DEPTHWISE[case]
    weights = _weights(w_shape, w_shape[0], bias="bias_term: false" not in param)
    model, got, _ = convert_and_compare(
        tmp_path, _net(shape, "ConvolutionDepthwise", param), {"conv": weights}
    )
    assert {a.name: a.i for a in model.graph.node[0].attribute}["group"] == shape[1]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    b = weights[1] if len(weights) == 2 else None
    ref = _caffe_conv(x, weights[0], b, stride, pad, (1, 1), shape[1])
    np.testing.assert_allclose(got["conv"], ref, atol=1e-5)


# id: (input shape, convolution_param, weight shape (C_in, C_out/g, kh, kw), stride, pad, dil,
#      group, output shape)
DECONV = {
    "stride2": ((1, 3, 4, 5), "num_output: 2 kernel_size: 4 stride: 2", (3, 2, 4, 4),
                (2, 2), (0, 0), (1, 1), 1, (1, 2, 10, 12)),
    "stride2-pad1": ((2, 3, 4, 4), "num_output: 4 kernel_size: 4 stride: 2 pad: 1",
                     (3, 4, 4, 4), (2, 2), (1, 1), (1, 1), 1, (2, 4, 8, 8)),
    "group": ((1, 4, 3, 3), "num_output: 6 kernel_size: 3 stride: 2 group: 2", (4, 3, 3, 3),
              (2, 2), (0, 0), (1, 1), 2, (1, 6, 7, 7)),
    "depthwise-upsample": ((1, 3, 4, 4), "num_output: 3 kernel_size: 4 stride: 2 pad: 1 "
                           "group: 3 bias_term: false", (3, 1, 4, 4),
                           (2, 2), (1, 1), (1, 1), 3, (1, 3, 8, 8)),
    "hw": ((1, 2, 3, 4), "num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 "
           "pad_h: 1 pad_w: 0", (2, 2, 3, 2), (2, 3), (1, 0), (1, 1), 1, (1, 2, 5, 11)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DECONV))
def test_deconvolution(tmp_path, case):
    shape, param, w_shape, stride, pad, dil, group, out_shape = DECONV[case]
    num_output = w_shape[1] * group
    weights = _weights(w_shape, num_output, bias="bias_term: false" not in param)
    model, got, _ = convert_and_compare(
        tmp_path, _net(shape, "Deconvolution", param), {"conv": weights}
    )
    assert got["conv"].shape == out_shape
    assert op_types(model) == ["ConvTranspose"]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    b = weights[1] if len(weights) == 2 else None
    ref = _caffe_deconv(x, weights[0], b, stride, pad, dil, group)
    np.testing.assert_allclose(got["conv"], ref, atol=1e-5)


# id: (input shape, convolution_param, weight shape, stride, pad, dilation, group, output shape)
DECONV_DILATED = {
    "dilation": ((1, 2, 4, 4), "num_output: 3 kernel_size: 3 dilation: 2 stride: 2 pad: 1",
                 (2, 3, 3, 3), (2, 2), (1, 1), (2, 2), 1, (1, 3, 9, 9)),
    "dilation-hw-group": ((1, 2, 4, 3), "num_output: 4 kernel_size: 2 dilation: 3 dilation: 2 "
                          "group: 2", (2, 2, 2, 2), (1, 1), (0, 0), (3, 2), 2, (1, 4, 7, 5)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DECONV_DILATED))
def test_deconvolution_dilation_vs_caffe_reference(tmp_path, case):
    """numpy reference: OpenCV 4.14 ignores dilation in Deconvolution (it gives 7x7, not 9x9)."""
    shape, param, w_shape, stride, pad, dil, group, out_shape = DECONV_DILATED[case]
    weights = _weights(w_shape, w_shape[1] * group, bias=True)
    model, got, feeds = convert_and_run(
        tmp_path, _net(shape, "Deconvolution", param), {"conv": weights}
    )
    ref = _caffe_deconv(feeds["data"], *weights, stride, pad, dil, group)
    assert got["conv"].shape == ref.shape == out_shape
    np.testing.assert_allclose(got["conv"], ref, atol=1e-5)
    assert {a.name: list(a.ints) for a in model.graph.node[0].attribute}["dilations"] == list(dil)


def test_v1_convolution_with_legacy_blobs(tmp_path):
    net = (
        'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 6\ninput_dim: 6\n'
        'layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" '
        "convolution_param { num_output: 2 kernel_size: 3 stride: 2 pad: 1 } }"
    )
    weights = _weights((2, 3, 3, 3), 2, bias=True)
    _, got, _ = convert_and_compare(tmp_path, net, {"conv": weights}, legacy_blobs=True)
    assert got["conv"].shape == (1, 2, 3, 3)


@pytest.mark.parametrize(
    ("type_name", "param", "blobs", "fragments"),
    [
        ("Convolution", "num_output: 4 kernel_size: 3", [(4, 3, 2, 2), (4,)],
         ["weight blob 0 (weights) has 48 values", "expected 108 for shape [4, 3, 3, 3]"]),
        ("Convolution", "num_output: 4 kernel_size: 3", [(4, 3, 3, 3), (3,)],
         ["weight blob 1 (bias) has 3 values", "expected 4 for shape [4]"]),
        ("Convolution", "num_output: 4 kernel_size: 3", [(4, 3, 3, 3)],
         ["missing weight blob 1 (bias)"]),
        ("Convolution", "num_output: 4 kernel_size: 3 group: 2", [(4, 1, 3, 3), (4,)],
         ["group 2 must divide input channels 3 and num_output 4"]),
        ("Convolution", "num_output: 4 kernel_size: 1 group: 3", [(4, 1, 1, 1), (4,)],
         ["group 3 must divide input channels 3 and num_output 4"]),
        ("Deconvolution", "num_output: 4 kernel_size: 2 group: 2", [(3, 2, 2, 2), (4,)],
         ["group 2 must divide input channels 3 and num_output 4"]),
        ("Deconvolution", "num_output: 4 kernel_size: 2 stride: 2", [(4, 3, 3, 3), (4,)],
         ["weight blob 0 (weights) has 108 values", "expected 48 for shape [3, 4, 2, 2]"]),
        ("Convolution", "num_output: 2 kernel_h: 3", [(2, 3, 3, 3), (2,)],
         ["kernel_h and kernel_w must be given together"]),
        ("Convolution", "num_output: 2", [(2, 3, 1, 1), (2,)],
         ["kernel size must be positive, got 0x0"]),
        ("Convolution", "num_output: 2 kernel_size: 1 kernel_size: 1 kernel_size: 1",
         [(2, 3, 1, 1), (2,)], ["kernel_size has 3 values"]),
        ("Convolution", "num_output: 2 kernel_size: 7", [(2, 3, 7, 7), (2,)],
         ["output shape [1, 2, 0, 0] has a non-positive dimension"]),
    ],
    ids=["weights-size", "bias-size", "bias-missing", "group-vs-channels", "group-vs-outputs",
         "deconv-group", "deconv-weights-size", "kernel-h-alone", "no-kernel", "3d-kernel",
         "kernel-larger-than-input"],
)  # fmt: skip
def test_errors_name_the_layer(tmp_path, type_name, param, blobs, fragments):
    weights = {"conv": [np.ones(s, np.float32) for s in blobs]}
    expect_error(tmp_path, _net((1, 3, 6, 6), type_name, param), weights, "conv",
                 f"({type_name})", *fragments)  # fmt: skip


def test_convolution_without_caffemodel_is_refused(tmp_path):
    from converters.caffe.convert import caffe_to_onnx
    from converters.errors import ConversionError

    path = tmp_path / "net.prototxt"
    path.write_text(_net((1, 3, 6, 6), "Convolution", "num_output: 2 kernel_size: 3"))
    with pytest.raises(ConversionError, match=r"needs weights \(blob 0 \(weights\)\) but no "):
        caffe_to_onnx(path)


def test_conv_relu_in_place_then_deconv(tmp_path):
    """A small encoder/decoder: the ConvTranspose must read the ReLU's value, not the conv's."""
    net = _net((1, 2, 6, 6), "Convolution", "num_output: 3 kernel_size: 3 stride: 2 pad: 1") + (
        '\nlayer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
        'layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up" '
        "convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }"
    )
    w = {"conv": _weights((3, 2, 3, 3), 3, True), "up": _weights((3, 2, 2, 2), 2, True, seed=4)}
    model, got, _ = convert_and_compare(tmp_path, net, w)
    assert op_types(model) == ["Conv", "Relu", "ConvTranspose"]
    assert list(got) == ["up"] and got["up"].shape == (1, 2, 6, 6)
