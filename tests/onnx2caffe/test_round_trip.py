"""Acceptance: the six real Caffe models go Caffe -> ONNX -> Caffe and the written Caffe model
matches the original in OpenCV DNN; the publisher's UltraFace ONNX files convert to Caffe."""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.onnx2caffe import onnx_to_caffe
from converters.onnx_source import load_onnx_source
from tests.caffe.helpers import run_opencv, run_ort, uniform_feeds

REAL_MODELS = ["mtcnn/det1", "mtcnn/det2", "mtcnn/det3", "mtcnn/det4",
               "ultraface/RFB-320", "ultraface/slim-320"]  # fmt: skip
PUBLISHER_ONNX = ["version-RFB-320_without_postprocessing.onnx",
                  "version-slim-320_without_postprocessing.onnx"]  # fmt: skip


@pytest.mark.parametrize("name", REAL_MODELS)
def test_caffe_onnx_caffe(tmp_path, models_dir, name):
    proto, weights = models_dir / f"{name}.prototxt", models_dir / f"{name}.caffemodel"
    model = caffe_to_onnx(proto, weights)
    out_proto, out_weights = tmp_path / "model.prototxt", tmp_path / "model.caffemodel"
    onnx_to_caffe(model, out_proto, out_weights)
    outputs = [o.name for o in model.graph.output]
    for seed in (0, 1):
        feeds = uniform_feeds(model, seed)
        original = run_opencv(proto, weights, feeds, outputs)
        again = run_opencv(out_proto, out_weights, feeds, outputs)
        for out in outputs:
            assert again[out].shape == original[out].shape, out
            err = float(np.abs(again[out] - original[out]).max())
            assert err <= 1e-4, f"{name} output {out}: max abs error {err}"


@pytest.mark.parametrize("filename", PUBLISHER_ONNX)
def test_publisher_onnx_to_caffe(tmp_path, models_dir, filename):
    model = load_onnx_source(models_dir / "ultraface" / filename)
    proto, weights = tmp_path / "model.prototxt", tmp_path / "model.caffemodel"
    onnx_to_caffe(model, proto, weights)
    feeds = uniform_feeds(model, 0)
    want = run_ort(model, feeds)
    got = run_opencv(proto, weights, feeds, list(want))
    assert set(want) == {"scores", "boxes"}
    for out in want:
        assert got[out].shape == want[out].shape
        # |boxes| reaches ~7; 35 BatchNorm+Scale pairs fold differently in the two runtimes.
        err = float(np.abs(got[out] - want[out]).max())
        assert err <= 1e-4, f"{filename} output {out}: max abs error {err}"
