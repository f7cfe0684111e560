"""ONNX MaxRoiPool -> Caffe ROIPooling (converters/onnx2caffe/ops/roi_pooling.py).

Which runtime checks the written model: the shared real-Caffe build has no ROIPooling, so the
written ``.prototxt`` runs in OpenCV's Caffe importer (its own ROI pooling code, which equals
Caffe's on every case here, half-pixel ROI corners and the all ``-inf`` bin included) and is
compared element for element with ``caffe_roi_pooling``, the numpy transcription of Caffe's
loop in tests/caffe/test_roi_pooling.py; the written model converted back to ONNX must give
onnxruntime's numbers of the first ONNX bit for bit (Caffe -> ONNX -> Caffe -> ONNX).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import helper

from converters.caffe.convert import caffe_to_onnx
from converters.caffe.proto import caffe_pb2
from converters.onnx2caffe import onnx_to_caffe
from tests.caffe.helpers import run_opencv, run_ort, write_net
from tests.caffe.test_roi_pooling import CASES, FLT_MAX, caffe_roi_pooling, hard_feeds, roi_net
from tests.onnx2caffe.helpers import assert_refused, make_model, node

f32 = np.float32


def _layers(prototxt) -> list[caffe_pb2.LayerParameter]:
    return list(text_format.Parse(prototxt.read_text(), caffe_pb2.NetParameter()).layer)


def _written(tmp_path, model):
    proto, weights = tmp_path / "w.prototxt", tmp_path / "w.caffemodel"
    onnx_to_caffe(model, proto, weights)
    return proto, weights


@pytest.mark.parametrize(("n", "c", "h", "w", "r", "pooled", "scale"), CASES)
def test_caffe_round_trip_gives_the_source_layer(tmp_path, n, c, h, w, r, pooled, scale):
    # zoomake's own ONNX: MaxRoiPool + Max(y, -FLT_MAX) comes back as the one source layer
    proto, weights = write_net(tmp_path, roi_net(n, c, h, w, r, *pooled, scale))
    first = caffe_to_onnx(proto, weights)
    assert [x.op_type for x in first.graph.node] == ["MaxRoiPool", "Max"]
    out_proto, out_weights = _written(tmp_path, first)
    source = {x.name: x for x in _layers(proto)}
    written = _layers(out_proto)
    assert [x.type for x in written] == ["Input", "Input", "ROIPooling"]
    assert written[2] == source["pool5"]  # name, bottoms, top and roi_pooling_param
    feeds = hard_feeds(np.random.default_rng(n * 100 + r + 1), n, c, h, w, r, scale)
    want = caffe_roi_pooling(feeds["data"], feeds["rois"], *pooled, scale)
    assert (want == -FLT_MAX).any() and (want == 0).any()  # the all -inf bin, empty bins
    cv = run_opencv(out_proto, out_weights, feeds, ["pool5"])["pool5"]
    np.testing.assert_array_equal(cv, want)
    again = caffe_to_onnx(out_proto, out_weights)
    np.testing.assert_array_equal(run_ort(again, feeds)["pool5"], run_ort(first, feeds)["pool5"])
    assert [x.op_type for x in again.graph.node] == ["MaxRoiPool", "Max"]


def _roi_model(pooled=(3, 2), scale=None, extra=(), outputs=("y",), consts=None):
    attrs = {"pooled_shape": list(pooled)}
    if scale is not None:
        attrs["spatial_scale"] = scale
    nodes = [node("MaxRoiPool", ["x", "rois"], "y", **attrs), *extra]
    return make_model(nodes, {"x": (1, 3, 9, 11), "rois": (12, 5)}, list(outputs), consts)


@pytest.mark.parametrize("scale", [None, 0.25, float(f32(1 / 12))])
def test_plain_max_roi_pool(tmp_path, scale):
    # another exporter's MaxRoiPool (no Max after it); 1/12 has no short decimal form: the
    # prototxt's spatial_scale must parse back to the very float32
    model = _roi_model(scale=scale)
    proto, weights = _written(tmp_path, model)
    (layer,) = [x for x in _layers(proto) if x.type != "Input"]
    assert layer.type == "ROIPooling" and list(layer.bottom) == ["x", "rois"]
    p = layer.roi_pooling_param
    assert (p.pooled_h, p.pooled_w) == (3, 2)
    assert f32(p.spatial_scale) == f32(1.0 if scale is None else scale)
    s = float(f32(1.0 if scale is None else scale))
    feeds = hard_feeds(np.random.default_rng(4), 1, 3, 9, 11, 12, s)
    feeds = {"x": feeds["data"], "rois": feeds["rois"]}
    want = caffe_roi_pooling(feeds["x"], feeds["rois"], 3, 2, s)
    np.testing.assert_array_equal(run_ort(model, feeds)["y"], want)
    np.testing.assert_array_equal(run_opencv(proto, weights, feeds, ["y"])["y"], want)


def test_floor_and_another_reader(tmp_path):
    # the pooled value read by the -FLT_MAX floor and by a Relu, both graph outputs: the floor
    # is an alias of the ROIPooling top (copied out under its name), the Relu reads the top
    extra = [node("Max", ["y", "lowest"], "z"), node("Relu", ["y"], "r")]
    model = _roi_model(extra=extra, outputs=("z", "r"), consts={"lowest": np.array(-FLT_MAX, f32)})
    proto, weights = _written(tmp_path, model)
    types = [x.type for x in _layers(proto)]
    assert types.count("ROIPooling") == 1 and "Eltwise" not in types
    feeds = hard_feeds(np.random.default_rng(5), 1, 3, 9, 11, 12, 1.0)
    feeds = {"x": feeds["data"], "rois": feeds["rois"]}
    want = run_ort(model, feeds)
    got = run_opencv(proto, weights, feeds, ["z", "r"])
    for name in ("z", "r"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


NODE = "Caffe export: node 'maxroipool_y' (MaxRoiPool): "


def _unchecked(attrs, rois_shape=(12, 5)):
    """A MaxRoiPool model ONNX's shape inference may reject (the writer infers leniently)."""
    n = node("MaxRoiPool", ["x", "rois"], "y", **attrs)
    ins = [
        helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 9, 11]),
        helper.make_tensor_value_info("rois", onnx.TensorProto.FLOAT, list(rois_shape)),
    ]
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph([n], "t", ins, [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip


ROIS = "ROIs must be (R, 5) = (batch index, x1, y1, x2, y2), got shape "


@pytest.mark.parametrize(
    ("attrs", "rois_shape", "reason"),
    [
        ({"pooled_shape": [0, 2]}, (12, 5), "pooled_shape must be two positive sizes "
                                            "(pooled_h, pooled_w), got [0, 2]"),
        ({"pooled_shape": [7]}, (12, 5), "pooled_shape must be two positive sizes "
                                         "(pooled_h, pooled_w), got [7]"),
        ({"pooled_shape": [2, 2], "spatial_scale": -0.5}, (12, 5),
         "spatial_scale must be positive and finite, got -0.5"),
        ({"pooled_shape": [2, 2]}, (12, 4), ROIS + "[12, 4]"),
        ({"pooled_shape": [2, 2]}, (1, 12, 5), ROIS + "[1, 12, 5]"),
    ],
)  # fmt: skip
def test_refusals(tmp_path, attrs, rois_shape, reason):
    assert_refused(tmp_path, _unchecked(attrs, rois_shape), NODE + reason)


def test_constant_rois_areassert_refused(tmp_path):
    rois = np.array([[0, 0, 0, 8, 8]], f32)
    n = node("MaxRoiPool", ["x", "rois"], "y", pooled_shape=[2, 2])
    model = make_model([n], {"x": (1, 3, 9, 11)}, ["y"], {"rois": rois})
    assert_refused(tmp_path, model, NODE + "the ROIs 'rois' are a constant; Caffe has no constant "
             "layer: make them a graph input")  # fmt: skip


def test_floor_elsewhere_staysassert_refused(tmp_path):
    # Max(x, -FLT_MAX) is only the identity on ROIPooling's output (a NaN or -inf elsewhere)
    n = node("Max", ["x", "lowest"], "y")
    model = make_model([n], {"x": (1, 3, 4, 4)}, ["y"], {"lowest": np.array(-FLT_MAX, f32)})
    assert_refused(tmp_path, model, "Caffe export: node 'max_y' (Max): Max with a constant other than "
             "0 has no Caffe layer")  # fmt: skip
