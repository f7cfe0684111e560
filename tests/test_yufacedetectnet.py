"""YuFaceDetectNet (recipes/yufacedetectnet-v*.yaml) as a whole detector on a real photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from converters.caffe.convert import caffe_to_onnx
from pipelines.verify.metrics import DetectionCheck
from tests.caffe import helpers
from tests.caffe.helpers import run_opencv, run_ort

PHOTO_SHA = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"


@pytest.mark.parametrize("version", [1, 2])
def test_photo_gives_real_detections_equal_to_real_caffe(version, repo_root, models_dir):
    recipe = yaml.safe_load(
        (repo_root / "recipes" / f"yufacedetectnet-v{version}.yaml").read_text()
    )
    assert recipe["verify"]["outputs"]["detection_out"]["compare"] == "detections"
    assert [f["sha256"] for f in recipe["verify"]["files"]] == [PHOTO_SHA]
    assert "outputs" not in recipe  # the whole network, DetectionOutput included
    d = models_dir / "yufacedetectnet"
    proto = d / f"yufacedetectnet-open-v{version}.prototxt"
    weights = d / f"yufacedetectnet-open-v{version}.caffemodel"
    model = caffe_to_onnx(proto, weights)
    # the verify sample as pipelines/verify/samples.py makes it: BGR, resized to 320x240, NCHW
    image = cv2.resize(cv2.imread(str(models_dir / "images" / "astronaut.png")), (320, 240))
    x = image.transpose(2, 0, 1)[None].astype(np.float32)
    mean = np.asarray(recipe["inputs"]["data"]["preprocess"].get("mean", 0), np.float32)
    ref_x = x - mean.reshape(-1, 1, 1)  # the reference gets the recipe's preprocessing
    got = run_ort(model, {"data": ref_x})["detection_out"]
    rows = got[0, 0]
    assert rows.shape[0] > 1 and (rows[:, 2] > 0.9).any()  # real detections (a face)
    if getattr(helpers, "caffe_available", lambda: False)():
        want = helpers.run_caffe(proto, weights, {"data": ref_x}, ["detection_out"])
        want = want["detection_out"]
        assert got.shape == want.shape  # Caffe's row count, not keep_top_k
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # OpenCV returns keep_top_k rows (ours first, then zero padding): the same detections
    cv = run_opencv(proto, weights, {"data": ref_x}, ["detection_out"])["detection_out"]
    assert cv.shape[2] == 50 and not cv[0, 0, rows.shape[0] :].any()
    check = DetectionCheck("detection_out", 1e-5, 0.0)
    check.add(0, got, cv)
    assert check.result()["passed"], check.result()["problems"]
