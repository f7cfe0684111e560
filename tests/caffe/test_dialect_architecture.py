"""A whole real architecture in a fork's dialect, against the original in OpenCV DNN.

MobileNet-SSD's deploy prototxt is rewritten the way MobileNet-YOLO (eric612) writes its nets:
depthwise convolutions as ``DepthwiseConvolution`` without ``group``, a fork field on a layer,
the head as ``Yolov3DetectionOutput`` with its own parameters. The converter must name the head
and the cut, and with the cut produce what OpenCV computes for the original net with the same
(synthesized) weights. Tolerance as in test_architectures.py: 1e-4 x the output's magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from converters.caffe.convert import caffe_to_onnx
from converters.caffe.prototxt import parse_prototxt
from converters.errors import ConversionError
from tests.caffe.helpers import run_opencv, run_ort
from tests.caffe.synth import synthesize_weights

CUT = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"]


def _mobilenet_yolo_dialect(original) -> str:
    net = parse_prototxt(original)
    depthwise = 0
    for layer in net.layer:
        p = layer.convolution_param
        if layer.type == "Convolution" and p.group > 1 and p.group == p.num_output:
            layer.type = "DepthwiseConvolution"
            p.ClearField("group")
            depthwise += 1
    assert depthwise == 13  # every depthwise layer of MobileNet v1
    det = next(layer for layer in net.layer if layer.type == "DetectionOutput")
    det.type = "Yolov3DetectionOutput"
    det.ClearField("detection_output_param")
    text = text_format.MessageToString(net)
    head = 'type: "Yolov3DetectionOutput"\n'
    fork = (
        "yolov3_detection_output_param { num_classes: 21 biases: [10, 14, 23, 27]\n"
        "  anchors_scale: [32, 16] mask_group_num: 2 mask: [0, 1, 2] }\n"
        "  yolo_fork_extra { nms_kind: DIOU beta: 0.6 }\n"
    )
    assert text.count(head) == 1
    text = text.replace(head, head + fork)
    # A layer-level fork field on an early layer: kept, warned about, harmless.
    return text.replace('name: "conv0"\n', 'name: "conv0"\n  quantize_int8: true\n', 1)


def test_ssd_in_mobilenet_yolo_dialect_converts_with_the_cut(models_dir, tmp_path):
    original = models_dir / "architectures" / "MobileNetSSD_deploy.prototxt"
    weights = synthesize_weights(original, tmp_path / "w.caffemodel", seed=5, outputs=CUT)
    dialect = tmp_path / "mobilenet_yolo.prototxt"
    dialect.write_text(_mobilenet_yolo_dialect(original))

    with pytest.raises(ConversionError) as err:
        caffe_to_onnx(dialect, weights)
    msg = str(err.value)
    assert "layer 'detection_out' (Yolov3DetectionOutput) is post-processing" in msg
    assert "--outputs mbox_loc,mbox_conf_flatten,mbox_priorbox" in msg and "\n" not in msg

    model = caffe_to_onnx(dialect, weights, outputs=CUT)
    groups = [a.i for n in model.graph.node if n.op_type == "Conv" for a in n.attribute
              if a.name == "group"]  # fmt: skip
    assert sum(g > 1 for g in groups) == 13
    rng = np.random.default_rng(12)
    feeds = {"data": rng.uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)}
    got = run_ort(model, feeds)
    want = run_opencv(original, weights, feeds, CUT)
    for name in CUT:
        ref = want[name].reshape(got[name].shape)
        scale = float(np.abs(ref).max())
        assert scale > 0
        err = float(np.abs(got[name] - ref).max())
        assert err <= 1e-4 * scale, f"{name}: max abs error {err} vs scale {scale}"
