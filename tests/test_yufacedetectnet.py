"""YuFaceDetectNet (recipes/yufacedetectnet-v*.yaml) as a whole detector on a real photo."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import cv2
import numpy as np
import onnx
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


def _photo(models_dir, recipe):
    """The verify sample as pipelines/verify/samples.py makes it, preprocessed for Caffe."""
    image = cv2.resize(cv2.imread(str(models_dir / "images" / "astronaut.png")), (320, 240))
    x = image.transpose(2, 0, 1)[None].astype(np.float32)
    mean = np.asarray(recipe["inputs"]["data"]["preprocess"].get("mean", 0), np.float32)
    return x - mean.reshape(-1, 1, 1)


def _onnx_conv_weights(model):
    """(float16 values, all values) of the Conv weights of an ONNX model."""
    inits = {t.name: t for t in model.graph.initializer}
    sizes = [(inits[n.input[1]].data_type, int(np.prod(inits[n.input[1]].dims)))
             for n in model.graph.node if n.op_type == "Conv"]  # fmt: skip
    return sum(s for t, s in sizes if t == onnx.TensorProto.FLOAT16), sum(s for _, s in sizes)


def _ir_conv_weights(xml):
    """(float16 values, all values) of the Convolution weights of an OpenVINO IR (read from
    the .xml: the Const behind each Convolution's input 1, through a decompression Convert)."""
    root = ET.parse(xml).getroot()
    layers = {lyr.get("id"): lyr for lyr in root.find("layers").findall("layer")}
    edges = {(e.get("to-layer"), e.get("to-port")): e.get("from-layer")
             for e in root.find("edges").findall("edge")}  # fmt: skip
    f16 = total = 0
    for lid, lyr in layers.items():
        if lyr.get("type") != "Convolution":
            continue
        src = layers[edges[(lid, lyr.find("input").findall("port")[1].get("id"))]]
        if src.get("type") == "Convert":
            src = layers[edges[(src.get("id"), src.find("input").find("port").get("id"))]]
        data = src.find("data")
        size = int(np.prod([int(d) for d in data.get("shape").split(",")]))
        total += size
        f16 += size if data.get("element_type") == "f16" else 0
    return f16, total


@pytest.mark.parametrize("target", ["onnx-fp16", "openvino-fp16"])
@pytest.mark.parametrize("version", [1, 2])
def test_fp16_detector_is_float16_and_finds_real_caffes_detections(
    version, target, repo_root, models_dir, tmp_path
):
    """Float16 convolutions throughout (main had 4.6%: the float32 walk from the NMS went
    through the whole backbone), and on the photo real Caffe's detections: the same count
    (v1 17, v2 27), one-to-one at IoU 0.99 within the recipe's fp16 atol."""
    from converters.fp16 import to_fp16

    recipe = yaml.safe_load(
        (repo_root / "recipes" / f"yufacedetectnet-v{version}.yaml").read_text()
    )
    d = models_dir / "yufacedetectnet"
    proto = d / f"yufacedetectnet-open-v{version}.prototxt"
    weights = d / f"yufacedetectnet-open-v{version}.caffemodel"
    model = caffe_to_onnx(proto, weights)
    x = _photo(models_dir, recipe)
    if target == "onnx-fp16":
        half = to_fp16(model)
        f16, total = _onnx_conv_weights(half)
        assert half.ByteSize() < 0.6 * model.ByteSize()
        got = run_ort(half, {"data": x})["detection_out"]
    else:
        import openvino as ov

        from converters.openvino_export import export_openvino

        onnx.save(model, tmp_path / "m.onnx")
        export_openvino(tmp_path / "m.onnx", tmp_path / "m.xml", "fp16")
        f16, total = _ir_conv_weights(tmp_path / "m.xml")
        assert (tmp_path / "m.bin").stat().st_size < 0.65 * (tmp_path / "m.onnx").stat().st_size
        compiled = ov.Core().compile_model(str(tmp_path / "m.xml"), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})  # fmt: skip
        got = compiled({"data": x})[compiled.output(0)]
    assert total > 600_000 and f16 / total >= 0.9, (f16, total)
    helpers.require_caffe()
    want = helpers.run_caffe(proto, weights, {"data": x}, ["detection_out"])["detection_out"]
    assert got.shape[2] == want.shape[2] == {1: 17, 2: 27}[version]
    atol = recipe["verify"]["tolerances"]["fp16"]["atol"]
    check = DetectionCheck("detection_out", atol, 0.0, 0.99)  # no cuts: no tie allowed here
    check.add(0, got, want)
    result = check.result()
    assert result["passed"] and result["matched_detections"] == want.shape[2], result
    assert result["max_abs_error"] > 0  # it really ran in float16


@pytest.mark.parametrize("version", [1, 2])
def test_pytorch_detector_gives_real_caffes_rows(version, repo_root, models_dir, tmp_path):
    """The pytorch target (recipes: pytorch): model.pt2 from torch.export, DetectionOutput as
    generated torch, on the photo: real Caffe's rows (v1 17, v2 27; not keep_top_k 50), row for
    row at 1e-5, and every detection matched one-to-one by compare: detections."""
    from converters.pytorch.convert import onnx_to_pytorch
    from converters.pytorch.runners import GeneratedRunner, Pt2Runner

    recipe = yaml.safe_load(
        (repo_root / "recipes" / f"yufacedetectnet-v{version}.yaml").read_text()
    )
    assert recipe["targets"]["pytorch"] == {"format": "pytorch", "precision": "fp32"}
    d = models_dir / "yufacedetectnet"
    proto = d / f"yufacedetectnet-open-v{version}.prototxt"
    weights = d / f"yufacedetectnet-open-v{version}.caffemodel"
    onnx_to_pytorch(caffe_to_onnx(proto, weights), tmp_path)
    x = _photo(models_dir, recipe)
    got = Pt2Runner(tmp_path / "model.pt2").run({"data": x})["detection_out"]
    py = GeneratedRunner(tmp_path / "model.py").run({"data": x})["detection_out"]
    np.testing.assert_array_equal(py, got)  # model.py and the archive are one model
    helpers.require_caffe()
    want = helpers.run_caffe(proto, weights, {"data": x}, ["detection_out"])["detection_out"]
    assert got.shape == want.shape == (1, 1, {1: 17, 2: 27}[version], 7)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert (got[0, 0, :, 2] > 0.9).any()  # a real face
    check = DetectionCheck("detection_out", 1e-5, 0.0, 0.99)
    check.add(0, got, want)
    result = check.result()
    assert result["passed"] and result["matched_detections"] == want.shape[2], result
