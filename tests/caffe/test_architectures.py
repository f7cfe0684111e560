"""Real deploy architectures with synthesized weights, against real Caffe and OpenCV DNN.

Tolerance: max abs error <= 1e-4 x the reference output's max magnitude (deep nets accumulate
float32 rounding differently in the two runtimes; the scale-relative bound keeps the check
equally strict for logits and for probabilities).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from converters.caffe.convert import caffe_to_onnx
from tests.caffe.helpers import assert_same_outputs, final_blobs, run_caffe, run_opencv, run_ort
from tests.caffe.synth import synthesize_weights

# (prototxt, input shape override for a fast test, cut points)
ARCHITECTURES = {
    "resnet50": ("ResNet-50-deploy.prototxt", None, None),
    "squeezenet1.1": ("squeezenet_v1.1_deploy.prototxt", [1, 3, 227, 227], None),
    "mobilenet_v1": ("mobilenet_deploy.prototxt", None, None),
    "mobilenet_ssd": (
        "MobileNetSSD_deploy.prototxt",
        None,
        ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
    ),
    "alexnet": ("bvlc_alexnet_deploy.prototxt", [1, 3, 227, 227], None),
    "lenet": ("lenet.prototxt", [2, 1, 28, 28], None),
    "cifar10_quick": ("cifar10_quick.prototxt", None, None),
}


@pytest.mark.parametrize("reference", ["caffe", "opencv"])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_matches_reference(arch, reference, models_dir, tmp_path):
    proto, weights, model, feeds, expected = synthesized_architecture(arch, models_dir, tmp_path)
    onnx.checker.check_model(model, full_check=True)
    got = run_ort(model, feeds)
    assert_same_outputs(got, expected)
    run = run_caffe if reference == "caffe" else run_opencv
    want = run(proto, weights, feeds, expected)
    for name in expected:
        assert got[name].shape == want[name].shape, (arch, name, got[name].shape, want[name].shape)
        ref = want[name]
        scale = float(np.abs(ref).max())
        assert scale > 0, f"{arch} {name}: reference output is all zeros (bad synthetic weights)"
        err = float(np.abs(got[name] - ref).max())
        assert err <= 1e-4 * scale, (
            f"{arch} {name} vs {reference}: max abs error {err} vs scale {scale}"
        )


def synthesized_architecture(arch: str, models_dir, tmp_path):
    """``(prototxt, weights, ONNX model, feeds, expected outputs)`` of one architecture with
    synthesized weights and seeded inputs in [-1, 1] (the other targets' tests share this)."""
    proto_name, shape, outputs = ARCHITECTURES[arch]
    proto = models_dir / "architectures" / proto_name
    input_name = _input_name(proto)
    shapes = {input_name: shape} if shape else None
    weights = synthesize_weights(
        proto, tmp_path / "w.caffemodel", seed=3, input_shapes=shapes, outputs=outputs
    )
    model = caffe_to_onnx(proto, weights, input_shapes=shapes, outputs=outputs)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {input_name: np.random.default_rng(11).uniform(-1, 1, dims).astype(np.float32)}
    expected = list(outputs) if outputs else final_blobs(proto)
    return proto, weights, model, feeds, expected


def _input_name(proto) -> str:
    from converters.caffe.prototxt import parse_prototxt

    net = parse_prototxt(proto)
    if net.input:
        return net.input[0]
    return next(layer.top[0] for layer in net.layer if layer.type == "Input")


def test_mobilenet_ssd_whole_network_matches_real_caffe(models_dir, tmp_path):
    """With its DetectionOutput (synthesized weights): Caffe's rows, in Caffe's order."""
    from pipelines.verify.metrics import DetectionCheck
    from tests.caffe import helpers

    proto = models_dir / "architectures" / "MobileNetSSD_deploy.prototxt"
    weights = synthesize_weights(proto, tmp_path / "w.caffemodel", seed=3)
    model = caffe_to_onnx(proto, weights)
    feeds = {"data": np.random.default_rng(11).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)}
    got = run_ort(model, feeds)["detection_out"]
    assert got.shape[2] > 1 and got[0, 0, 0, 1] >= 0  # real detections
    if getattr(helpers, "caffe_available", lambda: False)():
        want = helpers.run_caffe(proto, weights, feeds, ["detection_out"])["detection_out"]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # OpenCV (sorted by score, zero-padded to keep_top_k): the same detections
    cv = run_opencv(proto, weights, feeds, ["detection_out"])["detection_out"]
    check = DetectionCheck("detection_out", 1e-5, 0.0)
    check.add(0, got, cv)
    assert check.result()["passed"], check.result()["problems"]
