"""The six real Caffe models with their published weights, against real Caffe, OpenCV DNN and
the publisher's own ONNX exports (UltraFace)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from converters.caffe.convert import caffe_to_onnx
from tests.caffe.helpers import (
    assert_same_outputs,
    final_blobs,
    run_caffe,
    run_opencv,
    run_ort,
    uniform_feeds,
)

REAL_MODELS = ["mtcnn/det1", "mtcnn/det2", "mtcnn/det3", "mtcnn/det4",
               "ultraface/RFB-320", "ultraface/slim-320"]  # fmt: skip


@pytest.fixture(scope="module", params=REAL_MODELS)
def converted(request, models_dir):
    proto = models_dir / f"{request.param}.prototxt"
    weights = models_dir / f"{request.param}.caffemodel"
    return request.param, proto, weights, caffe_to_onnx(proto, weights)


def test_checker_full(converted):
    _, _, _, model = converted
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17


@pytest.mark.parametrize("reference", ["caffe", "opencv"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference(converted, seed, reference):
    name, proto, weights, model = converted
    feeds = uniform_feeds(model, seed)
    got = run_ort(model, feeds)
    expected = final_blobs(proto)
    assert_same_outputs(got, expected)
    run = run_caffe if reference == "caffe" else run_opencv
    want = run(proto, weights, feeds, expected)
    for out in expected:
        assert got[out].shape == want[out].shape, out
        err = float(np.abs(got[out] - want[out]).max())
        assert err <= 1e-4, f"{name} output {out}: max abs error {err}"


def test_io_names(converted):
    """Inputs named as the Caffe inputs, outputs as the final Caffe top blobs."""
    _name, proto, _, model = converted
    from converters.caffe.prototxt import parse_prototxt

    net = parse_prototxt(proto)
    consumed = {b for layer in net.layer for b in layer.bottom}
    produced = [t for layer in net.layer for t in layer.top]
    finals = [t for t in dict.fromkeys(produced) if t not in consumed]
    inputs = list(net.input) or [lyr.top[0] for lyr in net.layer if lyr.type == "Input"]
    assert [i.name for i in model.graph.input] == inputs
    assert sorted(o.name for o in model.graph.output) == sorted(finals)


@pytest.mark.parametrize("variant", ["RFB-320", "slim-320"])
def test_ultraface_matches_publisher_onnx(models_dir, variant):
    """Our conversion of the Caffe model equals the publisher's own PyTorch->ONNX export."""
    ours = caffe_to_onnx(
        models_dir / f"ultraface/{variant}.prototxt", models_dir / f"ultraface/{variant}.caffemodel"
    )
    theirs = onnx.load(models_dir / f"ultraface/version-{variant}_without_postprocessing.onnx")
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.uniform(-1, 1, (1, 3, 240, 320)).astype(np.float32)
        got = run_ort(ours, {ours.graph.input[0].name: x})
        want = run_ort(theirs, {theirs.graph.input[0].name: x})
        assert sorted(got) == sorted(want) == ["boxes", "scores"]
        for out in got:
            err = float(np.abs(got[out].reshape(want[out].shape) - want[out]).max())
            assert err <= 1e-4, f"{variant} {out}: max abs error {err}"
