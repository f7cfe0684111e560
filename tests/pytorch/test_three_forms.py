"""The three published forms of UltraFace RFB-320 agree through zoomake within 1e-4 on every
output, so each oracle checks the others: the PyTorch checkpoint (exported to ONNX here, and run
eagerly), the Caffe files (converted here, and run in OpenCV) and the publisher's ONNX."""

from __future__ import annotations

import numpy as np

from tests.caffe.helpers import run_opencv
from tests.pytorch.helpers import ULTRAFACE_SHAPES, assert_forms_agree, run_ort
from tests.pytorch.test_source import (
    assert_code_stayed_in_worker,
    assert_exported_by_torchscript,
    authors_input,
    ultraface_source,
)


def test_rfb_320_three_forms_agree(models_dir):
    import onnx

    from converters.caffe.convert import caffe_to_onnx
    from converters.pytorch.source import run_reference, torch_to_onnx

    d = models_dir / "ultraface"
    x = authors_input(3)
    feeds = {"input": x}
    src = ultraface_source(models_dir, "RFB-320")
    # The checkpoint's forward returns confidences before the softmax the other two apply: the
    # source's softmax option adds it (in the exported graph and in the eager reference).
    src.softmax = ["scores"]
    forms = {}
    forms["torch eager"] = run_reference(src, feeds, ["scores", "boxes"])
    exported_model = torch_to_onnx(src, {"input": [1, 3, 240, 320]}, ["scores", "boxes"])
    assert_exported_by_torchscript(exported_model)
    assert [n.op_type for n in exported_model.graph.node].count("Softmax") == 1
    forms["torch -> onnx"] = run_ort(exported_model, feeds)
    assert_code_stayed_in_worker(models_dir)
    for out in ("scores", "boxes"):  # the exporter alone: tighter
        np.testing.assert_allclose(
            forms["torch -> onnx"][out], forms["torch eager"][out], atol=1e-5, rtol=0, err_msg=out
        )
    caffe = caffe_to_onnx(
        d / "RFB-320.prototxt", d / "RFB-320.caffemodel", outputs=["scores", "boxes"]
    )
    forms["caffe -> onnx"] = run_ort(caffe, feeds)
    forms["caffe in opencv"] = run_opencv(
        d / "RFB-320.prototxt", d / "RFB-320.caffemodel", feeds, ["scores", "boxes"]
    )
    published = onnx.load(d / "version-RFB-320_without_postprocessing.onnx")
    forms["publisher onnx"] = run_ort(published, feeds)
    assert_forms_agree(forms, ULTRAFACE_SHAPES, atol=1e-4)
