"""DetectionOutput, SSD fork (converters/caffe/layers/detection_output.py).

References, each independent of the ONNX decomposition:
- ``_caffe_detection_output``: a loop-for-loop numpy transcription of SSD-Caffe's
  ``DetectionOutputLayer::Forward_cpu`` with ``DecodeBBox``, ``GetMaxScoreIndex``,
  ``ApplyNMSFast``, ``JaccardOverlap``, ``IntersectBBox`` and ``BBoxSize`` (weiliu89/caffe,
  branch ssd), in float32 scalars like Caffe;
- real Caffe (the side runtime; its DetectionOutput is SSD-Caffe's), for every case it can run;
- OpenCV for ``normalized_bbox: false``, an OpenCV extension real Caffe does not know.

Outputs are compared row for row (same count, same order) at 1e-5: the converted layer must
give Caffe's boxes in Caffe's order, not merely the same set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from tests.caffe.helpers import run_opencv, run_ort, write_net

try:  # real Caffe through the side runtime (the caffe-runtime branch's test helper)
    from tests.caffe.helpers import caffe_available, caffe_can_run, run_caffe
except ImportError:  # without it the numpy transcription (and OpenCV) stay the references
    caffe_available = None


def caffe_ready() -> bool:
    return caffe_available is not None and caffe_available()


f32 = np.float32
CODES = {"CORNER": 1, "CENTER_SIZE": 2, "CORNER_SIZE": 3}


# --- the numpy transcription of SSD-Caffe ------------------------------------------------------


def _decode(prior, var, loc, code, encoded, normalized):
    pxmin, pymin, pxmax, pymax = (f32(v) for v in prior)
    v = [f32(1)] * 4 if encoded else [f32(x) for x in var]
    lx, ly, lX, lY = (f32(x) for x in loc)
    if code == "CORNER":
        return [pxmin + v[0] * lx, pymin + v[1] * ly, pxmax + v[2] * lX, pymax + v[3] * lY]
    pw, ph = f32(pxmax - pxmin), f32(pymax - pymin)
    if not normalized:
        pw, ph = f32(pw + f32(1)), f32(ph + f32(1))
    if code == "CORNER_SIZE":
        return [pxmin + v[0] * lx * pw, pymin + v[1] * ly * ph,
                pxmax + v[2] * lX * pw, pymax + v[3] * lY * ph]  # fmt: skip
    if normalized:
        cx, cy = f32((pxmin + pxmax) / 2.0), f32((pymin + pymax) / 2.0)
    else:  # OpenCV's pixel-coordinate variant: the centre of the +1 box
        cx, cy = f32(pxmin + pw * f32(0.5)), f32(pymin + ph * f32(0.5))
    dcx, dcy = f32(v[0] * lx * pw + cx), f32(v[1] * ly * ph + cy)
    dw = f32(f32(math.exp(f32(v[2] * lX))) * pw)
    dh = f32(f32(math.exp(f32(v[3] * lY))) * ph)
    return [float(dcx) - float(dw) / 2.0, float(dcy) - float(dh) / 2.0,
            float(dcx) + float(dw) / 2.0, float(dcy) + float(dh) / 2.0]  # fmt: skip


def _size(b, normalized):
    if b[2] < b[0] or b[3] < b[1]:
        return f32(0)
    w, h = f32(b[2] - b[0]), f32(b[3] - b[1])
    return f32(w * h) if normalized else f32((w + f32(1)) * (h + f32(1)))


def _overlap(b1, b2, normalized):
    if b2[0] > b1[2] or b2[2] < b1[0] or b2[1] > b1[3] or b2[3] < b1[1]:
        inter = [f32(0)] * 4
    else:
        inter = [max(b1[0], b2[0]), max(b1[1], b2[1]), min(b1[2], b2[2]), min(b1[3], b2[3])]
    iw, ih = f32(inter[2] - inter[0]), f32(inter[3] - inter[1])
    if not normalized:
        iw, ih = f32(iw + f32(1)), f32(ih + f32(1))
    if iw > 0 and ih > 0:
        isz = f32(iw * ih)
        return f32(isz / f32(f32(_size(b1, normalized) + _size(b2, normalized)) - isz))
    return f32(0)


def _nms(boxes, scores, threshold, nms_threshold, top_k, normalized):
    order = [(s, i) for i, s in enumerate(scores) if s > threshold]
    order.sort(key=lambda si: -si[0])  # Python's sort is stable, like std::stable_sort
    if -1 < top_k < len(order):
        order = order[:top_k]
    kept = []
    for _, i in order:
        if all(_overlap(boxes[i], boxes[j], normalized) <= nms_threshold for j in kept):
            kept.append(i)
    return kept


def _caffe_detection_output(loc, conf, prior, *, num_classes, share_location=True,
                            background_label_id=0, code_type="CORNER",
                            variance_encoded_in_target=False, keep_top_k=-1,
                            confidence_threshold=None, nms_threshold=0.3, top_k=-1,
                            normalized=True):  # fmt: skip
    """SSD-Caffe's DetectionOutput forward: (1, 1, R, 7)."""
    n = loc.shape[0]
    p = prior.size // 8
    pri = prior.reshape(-1)[: p * 4].reshape(p, 4)
    var = prior.reshape(-1)[p * 4 : p * 8].reshape(p, 4)
    loc_classes = 1 if share_location else num_classes
    locs = loc.reshape(n, p, loc_classes, 4)
    confs = conf.reshape(n, p, num_classes)
    thr = f32(confidence_threshold) if confidence_threshold is not None else -np.finfo(f32).max
    rows_all, num_kept = [], 0
    for i in range(n):
        decoded = {}
        for c in range(loc_classes):
            label = -1 if share_location else c
            if label == background_label_id:
                continue
            decoded[label] = [
                [f32(x) for x in _decode(pri[k], var[k], locs[i, k, c], code_type,
                                         variance_encoded_in_target, normalized)]
                for k in range(p)
            ]  # fmt: skip
        indices = {}
        for c in range(num_classes):
            if c == background_label_id:
                continue
            boxes = decoded[-1 if share_location else c]
            scores = [f32(s) for s in confs[i, :, c]]
            indices[c] = _nms(boxes, scores, thr, f32(nms_threshold), top_k, normalized)
        num_det = sum(len(v) for v in indices.values())
        if -1 < keep_top_k < num_det:
            pairs = [(confs[i, k, c], c, k) for c in sorted(indices) for k in indices[c]]
            pairs.sort(key=lambda t: -t[0])
            new = {}
            for _, c, k in pairs[:keep_top_k]:
                new.setdefault(c, []).append(k)
            indices = new
        for c in sorted(indices):
            boxes = decoded[-1 if share_location else c]
            for k in indices[c]:
                rows_all.append([i, c, confs[i, k, c], *boxes[k]])
                num_kept += 1
    if num_kept == 0:
        rows_all = [[i, -1, -1, -1, -1, -1, -1] for i in range(n)]
    return np.asarray(rows_all, f32).reshape(1, 1, -1, 7)


# --- nets and data ---------------------------------------------------------------------------


def _net(n, p, num_classes, share_location=True, **param):
    loc_c = 1 if share_location else num_classes
    fields = [f"num_classes: {num_classes}", f"share_location: {str(share_location).lower()}"]
    nms = []
    for key, value in param.items():
        if key in ("nms_threshold", "top_k", "eta"):
            nms.append(f"{key}: {value}")
        elif isinstance(value, bool):
            fields.append(f"{key}: {str(value).lower()}")
        else:
            fields.append(f"{key}: {value}")
    if not any(n.startswith("nms_threshold") for n in nms):
        # This Caffe build (brocolli-caffe) skips thresholding and NMS altogether without an
        # nms_param; SSD-Caffe's source applies the defaults. Real SSD nets always give it.
        nms.append("nms_threshold: 0.3")
    if nms:
        fields.append("nms_param { " + " ".join(nms) + " }")
    return (
        f'input: "loc"\ninput_shape {{ dim: {n} dim: {p * loc_c * 4} }}\n'
        f'input: "conf"\ninput_shape {{ dim: {n} dim: {p * num_classes} }}\n'
        f'input: "prior"\ninput_shape {{ dim: 1 dim: 2 dim: {p * 4} }}\n'
        'layer { name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" '
        'bottom: "prior" top: "det" detection_output_param { ' + " ".join(fields) + " } }\n"
    )


def _feeds(n, p, num_classes, share_location=True, seed=0, pixels=False, loc_scale=0.5):
    """Priors clustered on a coarse grid (so that NMS has real work), random offsets and
    scores; ``pixels``: pixel-sized priors for normalized_bbox false."""
    rng = np.random.default_rng(seed)
    centre = rng.integers(0, 4, (p, 2)) / 4 + 0.125 + rng.normal(0, 0.01, (p, 2))
    half = rng.uniform(0.05, 0.2, (p, 2))
    boxes = np.concatenate([centre - half, centre + half], 1)
    if pixels:
        boxes = boxes * 100
    var = np.tile([0.1, 0.1, 0.2, 0.2], (p, 1))
    prior = np.stack([boxes.ravel(), var.ravel()])[None].astype(f32)
    loc_c = 1 if share_location else num_classes
    loc = (rng.standard_normal((n, p * loc_c * 4)) * loc_scale).astype(f32)
    conf = rng.uniform(0, 1, (n, p * num_classes)).astype(f32)
    return {"loc": loc, "conf": conf, "prior": prior}


def _check(tmp_path, n=1, p=40, num_classes=3, share_location=True, seed=0, caffe=True,
           opencv=False, pixels=False, loc_scale=0.5, openvino=False, **param):  # fmt: skip
    text = _net(n, p, num_classes, share_location, **param)
    proto, model_path = write_net(tmp_path, text)
    model = caffe_to_onnx(proto, model_path)
    feeds = _feeds(n, p, num_classes, share_location, seed, pixels, loc_scale)
    got = run_ort(model, feeds)["det"]
    ref_args = {k: v for k, v in param.items() if k not in ("normalized_bbox", "eta")}
    want = _caffe_detection_output(
        feeds["loc"], feeds["conf"], feeds["prior"], num_classes=num_classes,
        share_location=share_location, normalized=param.get("normalized_bbox", True),
        **ref_args,
    )  # fmt: skip
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg="vs numpy transcription")
    if caffe and caffe_ready():
        assert caffe_can_run(proto), "real Caffe should run this net"
        real = run_caffe(proto, model_path, feeds, ["det"])["det"]
        assert real.shape == got.shape, (real.shape, got.shape)
        np.testing.assert_allclose(got, real, atol=1e-5, rtol=0, err_msg="vs real Caffe")
    if opencv:
        # OpenCV sorts all rows by score and pads to keep_top_k with zero rows: compare the
        # same rows in OpenCV's order
        cv = run_opencv(proto, model_path, feeds, ["det"])["det"][0, 0]
        cv = cv[cv[:, 2] > 0]
        rows = got[0, 0][np.lexsort((got[0, 0, :, 1], -got[0, 0, :, 2]))]
        assert cv.shape == rows.shape, (cv.shape, rows.shape)
        np.testing.assert_allclose(rows, cv, atol=1e-4, rtol=0, err_msg="vs OpenCV")
    if openvino:
        import onnx
        import openvino as ov

        onnx.save(model, tmp_path / "det.onnx")
        compiled = ov.Core().compile_model(
            ov.convert_model(tmp_path / "det.onnx"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        ov_out = compiled(feeds)[compiled.output(0)]
        assert ov_out.shape == got.shape
        np.testing.assert_allclose(ov_out, got, atol=1e-5, rtol=0, err_msg="OpenVINO")
    return got


# --- cases -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code_type", list(CODES))
@pytest.mark.parametrize("encoded", [False, True])
def test_code_types_and_variance_in_target(tmp_path, code_type, encoded):
    got = _check(tmp_path, code_type=code_type, variance_encoded_in_target=encoded,
                 confidence_threshold=0.3, nms_threshold=0.45, top_k=20, loc_scale=0.2 if
                 encoded else 0.5)  # fmt: skip
    assert got.shape[2] > 3  # real detections, not the empty row


def test_corner_code_with_inverted_boxes_follows_caffe_overlap(tmp_path):
    # large CORNER offsets invert many boxes: Caffe gives them size 0 and no overlap, where
    # ONNX NonMaxSuppression would swap their corners and suppress with them
    got = _check(tmp_path, code_type="CORNER", loc_scale=3.0, nms_threshold=0.3, seed=3)
    rows = got[0, 0]
    assert ((rows[:, 5] < rows[:, 3]) | (rows[:, 6] < rows[:, 4])).any()


def test_share_location_false_with_background_not_zero(tmp_path):
    got = _check(tmp_path, num_classes=4, share_location=False, background_label_id=2,
                 code_type="CENTER_SIZE", confidence_threshold=0.5, nms_threshold=0.3)  # fmt: skip
    labels = set(got[0, 0, :, 1].tolist())
    assert 2 not in labels and labels <= {0, 1, 3} and len(labels) == 3


def test_no_background_class(tmp_path):
    got = _check(tmp_path, num_classes=2, share_location=False, background_label_id=-1,
                 code_type="CENTER_SIZE", confidence_threshold=0.6)  # fmt: skip
    assert set(got[0, 0, :, 1].tolist()) == {0, 1}


def test_no_background_with_shared_location_is_refused(tmp_path):
    # SSD-Caffe files the shared boxes under label -1 and skips decoding the background
    # label: with background_label_id -1 it decodes nothing and aborts (LOG(FATAL))
    proto, model_path = write_net(tmp_path, _net(1, 4, 2, background_label_id=-1))
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto, model_path)
    assert str(info.value) == (
        f"{proto}: layer 'det' (DetectionOutput): background_label_id -1 with share_location: "
        "true makes SSD-Caffe abort (it decodes no boxes); give share_location: false or a "
        "background class"
    )


@pytest.mark.parametrize(("top_k", "keep_top_k"), [(5, -1), (-1, 7), (10, 12), (0, -1), (30, 0)])
def test_top_k_and_keep_top_k(tmp_path, top_k, keep_top_k):
    got = _check(tmp_path, p=60, code_type="CENTER_SIZE", top_k=top_k, keep_top_k=keep_top_k,
                 confidence_threshold=0.05, nms_threshold=0.5)  # fmt: skip
    if keep_top_k > 0:
        assert got.shape[2] == keep_top_k  # plenty of detections: the cut applies
    # keep_top_k keeps the best: rows stay grouped by label, scores descending within a label
    rows = got[0, 0]
    for label in set(rows[:, 1].tolist()):
        s = rows[rows[:, 1] == label, 2]
        assert (np.diff(s) <= 0).all()


def test_rows_are_grouped_by_label_not_sorted_by_score(tmp_path):
    got = _check(tmp_path, code_type="CENTER_SIZE", confidence_threshold=0.2, keep_top_k=15)
    rows = got[0, 0]
    assert (np.diff(rows[:, 1]) >= 0).all()
    assert (np.diff(rows[:, 2]) > 0).any()  # a later label has a higher score


def test_no_confidence_threshold_means_every_score(tmp_path):
    got = _check(tmp_path, p=20, code_type="CENTER_SIZE", nms_threshold=1.0)
    assert got.shape[2] == 20 * 2  # nothing suppressed at threshold 1, no score cut


@pytest.mark.parametrize("n", [1, 2])
def test_empty_result_is_one_minus_one_row_per_image(tmp_path, n):
    got = _check(tmp_path, n=n, code_type="CENTER_SIZE", confidence_threshold=1.5)
    want = np.full((1, 1, n, 7), -1, f32)
    want[0, 0, :, 0] = np.arange(n)
    np.testing.assert_array_equal(got, want)


def test_batch_of_two_images(tmp_path):
    got = _check(tmp_path, n=2, code_type="CENTER_SIZE", confidence_threshold=0.4,
                 keep_top_k=9, openvino=True)  # fmt: skip
    assert set(got[0, 0, :, 0].tolist()) == {0, 1}


def test_equal_scores_keep_prior_order(tmp_path):
    # Caffe sorts candidates with std::stable_sort: equal scores stay in prior order
    text = _net(1, 12, 2, code_type="CENTER_SIZE", nms_threshold=0.3)
    proto, model_path = write_net(tmp_path, text)
    model = caffe_to_onnx(proto, model_path)
    feeds = _feeds(1, 12, 2, seed=5)
    feeds["conf"][:] = np.tile([0.25, 0.75], 12).astype(f32)  # every class-1 score equal
    got = run_ort(model, feeds)["det"]
    want = _caffe_detection_output(feeds["loc"], feeds["conf"], feeds["prior"], num_classes=2,
                                   code_type="CENTER_SIZE", nms_threshold=0.3)  # fmt: skip
    assert got.shape == want.shape and got.shape[2] > 1
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    if caffe_ready():
        real = run_caffe(proto, model_path, feeds, ["det"])["det"]
        np.testing.assert_allclose(got, real, atol=1e-5, rtol=0)


@pytest.mark.parametrize("code_type", ["CENTER_SIZE", "CORNER"])
def test_normalized_bbox_false_adds_one_to_sizes(tmp_path, code_type):
    # normalized_bbox is OpenCV's extension (this Caffe lacks it): OpenCV is the reference
    # (OpenCV insists on explicit background_label_id, top_k and keep_top_k)
    got = _check(tmp_path, code_type=code_type, normalized_bbox=False, caffe=False, opencv=True,
                 pixels=True, loc_scale=0.3, nms_threshold=0.3, confidence_threshold=0.3,
                 background_label_id=0, top_k=100, keep_top_k=100)  # fmt: skip
    assert got.shape[2] > 3


def test_openvino_runs_the_data_dependent_output(tmp_path):
    _check(tmp_path, code_type="CENTER_SIZE", confidence_threshold=0.2, top_k=25,
           keep_top_k=10, openvino=True)  # fmt: skip


def test_eta_below_one_is_refused_in_one_line(tmp_path):
    proto, model_path = write_net(tmp_path, _net(1, 4, 2, eta=0.9))
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto, model_path)
    assert str(info.value) == (
        f"{proto}: layer 'det' (DetectionOutput): nms_param.eta 0.9 (adaptive NMS) is not "
        "supported; only eta: 1"
    )


def test_wrong_loc_size_is_refused(tmp_path):
    text = _net(1, 4, 2).replace("dim: 16 }", "dim: 12 }", 1)
    proto, model_path = write_net(tmp_path, text)
    with pytest.raises(ConversionError, match="loc bottom has shape \\[1, 12\\], expected"):
        caffe_to_onnx(proto, model_path)
