"""The six real Caffe models: Caffe -> ONNX (converters.caffe) -> PyTorch; model.pt2 and
model.py + model.pth run in torch against OpenCV's run of the Caffe model, within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import final_blobs, run_opencv, uniform_feeds
from tests.pytorch.helpers import torch  # noqa: F401  (skips without torch)

MODELS = {
    "det1": ("mtcnn/det1", None),
    "det2": ("mtcnn/det2", None),
    "det3": ("mtcnn/det3", None),
    "det4": ("mtcnn/det4", None),
    "RFB-320": ("ultraface/RFB-320", ["scores", "boxes"]),
    "slim-320": ("ultraface/slim-320", ["scores", "boxes"]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_caffe_to_pytorch_matches_opencv(name, models_dir, tmp_path):
    from converters.caffe.convert import caffe_to_onnx
    from converters.pytorch.convert import load_generated, onnx_to_pytorch, run_module, run_pt2

    stem, outputs = MODELS[name]
    proto, weights = models_dir / f"{stem}.prototxt", models_dir / f"{stem}.caffemodel"
    model = caffe_to_onnx(proto, weights, outputs=outputs)
    onnx_to_pytorch(model, tmp_path, source=proto.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2", "model.pth", "model.py"]
    feeds = uniform_feeds(model, seed=7)
    expected = list(outputs) if outputs else final_blobs(proto)
    want = run_opencv(proto, weights, feeds, expected)
    net, module = load_generated(tmp_path / "model.py", tmp_path / "model.pth")
    assert expected == module.OUTPUTS
    eager = run_module(net, module, feeds)
    exported = dict(
        zip(module.OUTPUTS, run_pt2(tmp_path / "model.pt2", feeds, module.INPUTS), strict=True)
    )
    for got in (eager, exported):
        for out in expected:
            assert got[out].shape == want[out].shape, (out, got[out].shape, want[out].shape)
            np.testing.assert_allclose(
                got[out], want[out], atol=1e-4, rtol=0, err_msg=f"{name} {out}"
            )
