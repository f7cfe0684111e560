"""``compare: detections`` (pipelines/verify/metrics.py DetectionCheck): detections in any order."""

from __future__ import annotations

import numpy as np

from pipelines.verify.metrics import DetectionCheck

ROWS = np.array(
    [
        [0, 1, 0.9, 0.10, 0.10, 0.30, 0.40],
        [0, 1, 0.5, 0.50, 0.50, 0.70, 0.90],
        [0, 2, 0.8, 0.10, 0.10, 0.30, 0.40],
    ],
    np.float32,
)


def _run(got, ref, atol=1e-5, rtol=0.0):
    check = DetectionCheck("det", atol, rtol)
    check.add(0, got[None, None], ref[None, None])
    return check.result()


def test_same_detections_in_another_order_with_padding_pass():
    # OpenCV's order (by score) and zero padding up to keep_top_k against Caffe's rows
    got = np.concatenate([ROWS[[0, 2, 1]], np.zeros((4, 7), np.float32)])
    r = _run(got, ROWS)
    assert r["passed"] and r["matched_detections"] == 3, r


def test_elementwise_would_fail_where_detections_pass():
    from pipelines.verify.metrics import OutputCheck

    check = OutputCheck("det", 1e-5, 0.0)
    check.add(0, ROWS[[1, 0, 2]][None, None], ROWS[None, None])
    assert not check.result()["passed"]


def test_missing_detection_is_reported_by_index():
    r = _run(ROWS[:2], ROWS)
    assert not r["passed"]
    assert r["problems"] == [
        "sample 0: 2 detections, the reference has 3",
        "sample 0: unmatched reference detections [2]",
    ]


def test_same_box_other_label_does_not_match():
    got = ROWS.copy()
    got[2, 1] = 3
    r = _run(got, ROWS)
    assert r["problems"] == [
        "sample 0: unmatched detections [2]",
        "sample 0: unmatched reference detections [2]",
    ]


def test_moved_box_is_unmatched_and_small_error_is_out_of_tolerance():
    got = ROWS.copy()
    got[1, 3:] += 0.05  # IoU far below 0.99
    r = _run(got, ROWS)
    assert "sample 0: unmatched detections [1]" in r["problems"]
    got = ROWS.copy()
    got[0, 2] += 1e-3  # matched, score off by 1e-3 > atol 1e-5
    r = _run(got, ROWS)
    assert not r["passed"] and r["matched_detections"] == 3
    assert r["problems"][0].startswith("sample 0: detection 0 (reference 0) differs by 0.001")
    assert r["message"].startswith("FAILED output 'det' (compare: detections): sample 0:")


def test_caffe_empty_row_equals_no_detections():
    empty = np.full((1, 7), -1, np.float32)
    empty[0, 0] = 0
    assert _run(empty, np.zeros((5, 7), np.float32))["passed"]
    assert not _run(empty, ROWS)["passed"]


def test_iou_per_precision_from_the_recipe():
    from pipelines.verify.measure import compare_modes

    recipe = {"verify": {"outputs": {"det": {"compare": "detections"}, "other": {}}}}
    assert compare_modes(recipe, ["det", "other"]) == {"det": {"compare": "detections",
                                                              "iou": 0.99}}  # fmt: skip
    assert compare_modes(recipe, ["det"], "fp16")["det"]["iou"] == 0.85  # the fp16 default
    recipe["verify"]["tolerances"] = {"fp16": {"atol": 1e-3, "iou": 0.9}}
    assert compare_modes(recipe, ["det"], "fp16")["det"]["iou"] == 0.9  # the preset
    recipe["verify"]["outputs"]["det"]["iou"] = 0.97
    assert compare_modes(recipe, ["det"], "fp16")["det"]["iou"] == 0.97  # the output's
    assert compare_modes(recipe, ["det"], "fp32")["det"]["iou"] == 0.97
    recipe["verify"]["outputs"]["det"]["fp16"] = {"iou": 0.8}
    assert compare_modes(recipe, ["det"], "fp16")["det"]["iou"] == 0.8  # output + precision
    assert compare_modes(recipe, ["det"], "fp32")["det"]["iou"] == 0.97


def test_fp16_sized_shift_on_a_small_box_needs_the_fp16_iou():
    # a 0.01-wide box moved by 5e-4 (what fp16 does on YuFaceDetectNet): IoU ~0.90
    ref = np.array([[0, 1, 0.6, 0.200, 0.300, 0.210, 0.312]], np.float32)
    got = ref + np.array([[0, 0, 2e-4, 5e-4, -5e-4, 5e-4, 0]], np.float32)
    strict = DetectionCheck("det", 1e-3, 0.0, 0.99)
    strict.add(0, got[None, None], ref[None, None])
    assert not strict.result()["passed"]
    fp16 = DetectionCheck("det", 1e-3, 0.0, 0.85)
    fp16.add(0, got[None, None], ref[None, None])
    assert fp16.result()["passed"] and fp16.result()["matched_detections"] == 1
    tight = DetectionCheck("det", 1e-4, 0.0, 0.85)  # the coordinates still count
    tight.add(0, got[None, None], ref[None, None])
    assert not tight.result()["passed"]
