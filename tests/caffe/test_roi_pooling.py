"""ROIPooling (Fast R-CNN fork, converters/caffe/layers/roi_pooling.py).

Reference: ``caffe_roi_pooling``, a loop-for-loop numpy transcription of
``ROIPoolingLayer::Forward_cpu`` (rbgirshick/caffe-fast-rcnn ``roi_pooling_layer.cpp``), in
float32 scalars like Caffe, with C's ``round`` written out in float64 (exact for float32).
The shared Caffe build has no ROIPooling (it registers PSROIPooling and Proposal only), so the
transcription is the reference; OpenCV's ROI pooling is a second opinion.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import openvino as ov
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from tests.caffe.helpers import run_opencv, run_ort, write_net

f32 = np.float32
FLT_MAX = np.finfo(f32).max


def _c_round(v) -> int:
    a = abs(float(v))
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return int(math.copysign(r, float(v)))


def caffe_roi_pooling(data, rois, pooled_h, pooled_w, spatial_scale):
    n, channels, height, width = data.shape
    rois = rois.reshape(-1, 5)
    top = np.full((len(rois), channels, pooled_h, pooled_w), -FLT_MAX, f32)
    scale = f32(spatial_scale)
    for r, roi in enumerate(rois):
        batch = int(roi[0])
        assert 0 <= batch < n
        start_w, start_h = _c_round(f32(roi[1]) * scale), _c_round(f32(roi[2]) * scale)
        end_w, end_h = _c_round(f32(roi[3]) * scale), _c_round(f32(roi[4]) * scale)
        roi_h, roi_w = max(end_h - start_h + 1, 1), max(end_w - start_w + 1, 1)
        bin_h, bin_w = f32(roi_h) / f32(pooled_h), f32(roi_w) / f32(pooled_w)
        for c in range(channels):
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    hs = math.floor(f32(ph) * bin_h)
                    ws = math.floor(f32(pw) * bin_w)
                    he = math.ceil(f32(ph + 1) * bin_h)
                    we = math.ceil(f32(pw + 1) * bin_w)
                    hs, he = min(max(hs + start_h, 0), height), min(max(he + start_h, 0), height)
                    ws, we = min(max(ws + start_w, 0), width), min(max(we + start_w, 0), width)
                    if he <= hs or we <= ws:
                        top[r, c, ph, pw] = 0
                    for hh in range(hs, he):
                        for ww in range(ws, we):
                            if data[batch, c, hh, ww] > top[r, c, ph, pw]:
                                top[r, c, ph, pw] = data[batch, c, hh, ww]
    return top


def roi_net(n, c, h, w, r, pooled_h=3, pooled_w=2, scale=0.25):
    return (
        f'input: "data"\ninput_shape {{ dim: {n} dim: {c} dim: {h} dim: {w} }}\n'
        f'input: "rois"\ninput_shape {{ dim: {r} dim: 5 }}\n'
        'layer { name: "pool5" type: "ROIPooling" bottom: "data" bottom: "rois" top: "pool5" '
        f"roi_pooling_param {{ pooled_h: {pooled_h} pooled_w: {pooled_w} "
        f"spatial_scale: {scale} }} }}\n"
    )


def random_rois(rng, r, n, h, w, scale):
    """Boxes in image pixels: inside, partly outside, inverted (malformed: 1x1) and on the
    half-pixel edges where C's round and round-half-to-even disagree."""
    img_h, img_w = h / scale, w / scale
    x1 = rng.uniform(-0.2 * img_w, img_w, r)
    y1 = rng.uniform(-0.2 * img_h, img_h, r)
    x2 = x1 + rng.uniform(-0.1 * img_w, 0.8 * img_w, r)
    y2 = y1 + rng.uniform(-0.1 * img_h, 0.8 * img_h, r)
    boxes = np.stack([rng.integers(0, n, r), x1, y1, x2, y2], 1).astype(f32)
    half = (np.arange(r) % 3 == 0)[:, None]  # coordinates at k + 0.5 on the feature map
    k = rng.integers(-2, max(w, h) + 2, (r, 4)).astype(f32)
    boxes[:, 1:] = np.where(half, (k + f32(0.5)) / f32(scale), boxes[:, 1:])
    return boxes


def hard_feeds(rng, n, c, h, w, r, scale) -> dict[str, np.ndarray]:
    """Features and ROIs where the definitions could part: negative features (Caffe's bins
    start at -FLT_MAX, onnxruntime's MaxRoiPool did at FLT_MIN), an all -inf bin (-FLT_MAX in
    Caffe: the last ROI covers the 2 x 2 feature pixels of -inf) and ``random_rois``' corners."""
    data = rng.standard_normal((n, c, h, w)).astype(f32) - f32(0.5)
    data[0, 0, :2, :2] = -np.inf
    rois = random_rois(rng, r, n, h, w, scale)
    rois[-1] = [0, 0, 0, 1 / scale, 1 / scale]
    return {"data": data, "rois": rois}


CASES = [(1, 3, 9, 11, 12, (3, 2), 0.25), (2, 4, 7, 6, 10, (2, 3), 0.0625),
         (1, 2, 5, 5, 6, (4, 4), 1.0), (2, 1, 12, 8, 8, (7, 7), 0.5)]  # fmt: skip


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "r", "pooled", "scale"),
    CASES,
)
def test_matches_caffe_transcription(tmp_path, n, c, h, w, r, pooled, scale):
    text = roi_net(n, c, h, w, r, *pooled, scale)
    proto, weights = write_net(tmp_path, text)
    model = caffe_to_onnx(proto, weights)
    feeds = hard_feeds(np.random.default_rng(n * 100 + r), n, c, h, w, r, scale)
    data, rois = feeds["data"], feeds["rois"]
    got = run_ort(model, feeds)["pool5"]
    want = caffe_roi_pooling(data, rois, *pooled, scale)
    assert got.shape == want.shape == (r, c, *pooled)
    np.testing.assert_array_equal(got, want)
    assert (want == 0).any() and (want < 0).any()  # empty and negative bins are exercised
    assert (want == -FLT_MAX).any()  # the all -inf bin
    # OpenVINO (its ROIPooling starts at -inf; the Max after it makes that -FLT_MAX)
    onnx.save(model, tmp_path / "roi.onnx")
    compiled = ov.Core().compile_model(ov.convert_model(tmp_path / "roi.onnx"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})  # fmt: skip
    np.testing.assert_array_equal(compiled(feeds)[compiled.output(0)], want)


def test_opencv_second_opinion(tmp_path):
    rng = np.random.default_rng(7)
    proto, weights = write_net(tmp_path, roi_net(1, 3, 9, 11, 12))
    model = caffe_to_onnx(proto, weights)
    data = rng.standard_normal((1, 3, 9, 11)).astype(f32)
    rois = random_rois(rng, 12, 1, 9, 11, 0.25)
    rois[:, 1:] = np.round(rois[:, 1:] * 4 + 0.3) / 4  # away from the half-pixel ties
    feeds = {"data": data, "rois": rois}
    got = run_ort(model, feeds)["pool5"]
    cv = run_opencv(proto, weights, feeds, ["pool5"])["pool5"]
    np.testing.assert_allclose(got, cv, atol=1e-6, rtol=0)


def test_bad_rois_shape_is_refused(tmp_path):
    text = roi_net(1, 2, 5, 5, 3).replace("dim: 3 dim: 5 }", "dim: 3 dim: 4 }")
    proto, weights = write_net(tmp_path, text)
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto, weights)
    assert str(info.value) == (
        f"{proto}: layer 'pool5' (ROIPooling): rois must be (R, 5) = (batch index, x1, y1, "
        "x2, y2), got shape [3, 4]"
    )


def test_zero_pooled_size_is_refused(tmp_path):
    proto, weights = write_net(tmp_path, roi_net(1, 2, 5, 5, 3, pooled_h=0))
    with pytest.raises(ConversionError, match="pooled_h/pooled_w must be positive, got 0/2"):
        caffe_to_onnx(proto, weights)
