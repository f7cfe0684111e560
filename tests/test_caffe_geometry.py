"""converters/caffe_geometry.py: Caffe's pooling output size against OpenCV's Caffe importer
(which follows Caffe's CEIL arithmetic) and onnxruntime's pooling (CEIL and FLOOR)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from converters.caffe_geometry import caffe_pool_size

# (size, kernel, stride, pad) with pad < kernel (Caffe refuses the rest) and a first window that
# fits; the grid holds the cases where CEIL's last window starts in the padding and is dropped.
CASES = [
    (h, k, s, p)
    for h, k, s in itertools.product(range(1, 10), range(1, 5), range(1, 4))
    for p in range(k)
    if h + 2 * p >= k
]


def _opencv_caffe_pool(h, k, s, p) -> int:
    prototxt = (
        f'input: "x" input_shape {{ dim: 1 dim: 1 dim: {h} dim: 1 }}\n'
        'layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX '
        f"kernel_h: {k} kernel_w: 1 stride_h: {s} stride_w: 1 pad_h: {p} pad_w: 0 }} }}\n"
    )
    net = cv2.dnn.readNetFromCaffe(np.frombuffer(prototxt.encode(), np.uint8))
    net.setInput(np.zeros((1, 1, h, 1), np.float32))
    return net.forward().shape[2]


def _onnxruntime_pool(h, k, s, p, ceil) -> int:
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k, 1], strides=[s, 1],
                            pads=[p, 0, p, 0], ceil_mode=int(ceil))  # fmt: skip
    graph = helper.make_graph(
        [node], "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, h, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # its shape inference differs from its kernel exactly here
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.zeros((1, 1, h, 1), np.float32)})[0].shape[2]


def test_ceil_size_is_opencvs_caffe_size():
    got = {c: caffe_pool_size(*c) for c in CASES}
    want = {c: _opencv_caffe_pool(*c) for c in CASES}
    assert got == want
    assert caffe_pool_size(3, 2, 2, 1) == 2  # ceil(3/2)+1 = 3, but window 2 starts at 3 = H + p


def test_floor_size_is_onnxruntimes():
    got = {c: caffe_pool_size(*c, ceil=False) for c in CASES}
    assert got == {c: _onnxruntime_pool(*c, False) for c in CASES}


def test_ceil_size_is_onnxruntimes_but_for_caffes_unpadded_overhang():
    """onnxruntime drops a CEIL window starting at or after H + pad; Caffe does so only when
    pad > 0, so with pad 0 it keeps one window more exactly when that window starts at H."""
    for h, k, s, p in CASES:
        ours, theirs = caffe_pool_size(h, k, s, p), _onnxruntime_pool(h, k, s, p, True)
        outside = p == 0 and (ours - 1) * s >= h
        assert ours == theirs + outside, (h, k, s, p)
    assert caffe_pool_size(3, 2, 3, 0) == 2 and _onnxruntime_pool(3, 2, 3, 0, True) == 1
