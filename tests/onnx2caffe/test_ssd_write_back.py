"""SSD Caffe -> ONNX -> Caffe: PriorBox, Normalize and DetectionOutput are written back as Caffe
layers (converters/onnx2caffe/caffe_layers.py) and the written model is run by real Caffe (its
DetectionOutput is SSD-Caffe's) and by OpenCV, against real Caffe on the source model."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from google.protobuf import text_format

from converters.caffe import records
from converters.caffe.convert import caffe_to_onnx
from converters.caffe.proto import caffe_pb2
from converters.errors import ConversionError
from converters.onnx2caffe import onnx_to_caffe
from converters.passes import run_passes
from pipelines.verify.metrics import DetectionCheck
from tests.caffe.helpers import require_caffe, run_caffe, run_opencv
from tests.caffe.synth import synthesize_weights


def _types(prototxt) -> list[str]:
    net = text_format.Parse(prototxt.read_text(), caffe_pb2.NetParameter())
    return [layer.type for layer in net.layer]


def _round_trip(tmp_path, proto, weights, feeds, optimize=True):
    model = caffe_to_onnx(proto, weights)
    if optimize:  # what the build exports from: the default passes folded the constants
        model = run_passes(model)
    out_proto, out_weights = tmp_path / "rt.prototxt", tmp_path / "rt.caffemodel"
    onnx_to_caffe(model, out_proto, out_weights)
    types = _types(out_proto)
    assert types.count("DetectionOutput") == 1 and "Loop" not in types
    assert types.count("PriorBox") == _types(proto).count("PriorBox")
    src = run_caffe(proto, weights, feeds, ["detection_out"])["detection_out"]
    again = run_caffe(out_proto, out_weights, feeds, ["detection_out"])["detection_out"]
    assert src.shape == again.shape and src.shape[2] > 1 and src[0, 0, 0, 1] >= 0
    np.testing.assert_allclose(again, src, atol=1e-5, rtol=0)
    # OpenCV (rows sorted by score, zero-padded to keep_top_k): the same detections
    cv = run_opencv(out_proto, out_weights, feeds, ["detection_out"])["detection_out"]
    check = DetectionCheck("detection_out", 1e-5, 0.0)
    check.add(0, cv, src)
    result = check.result()
    assert result["passed"], result["problems"]
    assert result["matched_detections"] == src.shape[2]
    return out_proto


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("optimize", [True, False])
def test_yufacedetectnet_round_trip_on_the_photo(tmp_path, models_dir, version, optimize):
    require_caffe()
    d = models_dir / "yufacedetectnet"
    proto = d / f"yufacedetectnet-open-v{version}.prototxt"
    weights = d / f"yufacedetectnet-open-v{version}.caffemodel"
    image = cv2.resize(cv2.imread(str(models_dir / "images" / "astronaut.png")), (320, 240))
    feeds = {"data": image.transpose(2, 0, 1)[None].astype(np.float32)}
    out = _round_trip(tmp_path, proto, weights, feeds, optimize)
    assert _types(out).count("Normalize") == 4


def test_mobilenet_ssd_round_trip(tmp_path, models_dir):
    # PriorBox with max_size, flip and clip; DetectionOutput on 21 classes (synthesized weights)
    require_caffe()
    proto = models_dir / "architectures" / "MobileNetSSD_deploy.prototxt"
    weights = synthesize_weights(proto, tmp_path / "w.caffemodel", seed=3)
    feeds = {"data": np.random.default_rng(11).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)}
    _round_trip(tmp_path, proto, weights, feeds)


def _yufacedetectnet_onnx(models_dir):
    d = models_dir / "yufacedetectnet"
    return caffe_to_onnx(d / "yufacedetectnet-open-v2.prototxt",
                         d / "yufacedetectnet-open-v2.caffemodel")  # fmt: skip


def test_changed_priors_are_refused(tmp_path, models_dir):
    model = run_passes(_yufacedetectnet_onnx(models_dir))
    name = "conv4_3_norm_mbox_priorbox"  # the priors of one head, an initializer now
    prior = next(t for t in model.graph.initializer if t.name == name)
    values = onnx.numpy_helper.to_array(prior).copy()
    values[0, 0, 5] += 0.01
    prior.CopyFrom(onnx.numpy_helper.from_array(values, name))
    with pytest.raises(ConversionError) as info:
        onnx_to_caffe(model, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    assert str(info.value) == (
        "Caffe export: layer 'conv4_3_norm_mbox_priorbox' (PriorBox) recorded by the Caffe -> "
        "ONNX conversion: the constant 'conv4_3_norm_mbox_priorbox' in the graph no longer "
        "equals what the recorded layer computes"
    )
    assert not list(tmp_path.iterdir())


def test_edited_decomposition_is_refused(tmp_path, models_dir):
    # a graph input wired into the NMS graph: the recorded layer would no longer be what runs
    model = _yufacedetectnet_onnx(models_dir)
    extra = onnx.helper.make_tensor_value_info("bias", onnx.TensorProto.FLOAT, [1])
    model.graph.input.append(extra)
    node = next(n for n in model.graph.node if n.output[0] == "detection_out/masked")
    node.input[1] = "bias"
    with pytest.raises(ConversionError, match="the graph computing 'detection_out' also reads "
                       "'bias', which is not one of its bottoms"):  # fmt: skip
        onnx_to_caffe(model, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")


def test_without_records_the_nms_loop_is_refused(tmp_path, models_dir):
    model = _yufacedetectnet_onnx(models_dir)
    keep = [p for p in model.metadata_props if p.key != records.METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    with pytest.raises(ConversionError, match=r"no Caffe equivalent"):
        onnx_to_caffe(model, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")


def test_cut_before_detection_output_writes_the_priors_back(tmp_path, models_dir):
    # the raw heads (a recipe's `outputs`): the priors are a constant output, written as
    # PriorBox + Concat layers; OpenCV runs the written net like the source
    proto = models_dir / "architectures" / "MobileNetSSD_deploy.prototxt"
    heads = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"]
    weights = synthesize_weights(proto, tmp_path / "w.caffemodel", seed=3, outputs=heads)
    model = run_passes(caffe_to_onnx(proto, weights, outputs=heads))
    out_proto, out_weights = tmp_path / "rt.prototxt", tmp_path / "rt.caffemodel"
    onnx_to_caffe(model, out_proto, out_weights)
    types = _types(out_proto)
    assert types.count("PriorBox") == 6 and "DetectionOutput" not in types
    feeds = {"data": np.random.default_rng(5).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)}
    want = run_opencv(proto, weights, feeds, heads)
    got = run_opencv(out_proto, out_weights, feeds, heads)
    for name in heads:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0, err_msg=name)
    np.testing.assert_array_equal(got["mbox_priorbox"], want["mbox_priorbox"])
