"""``compare: detections`` (pipelines/verify/metrics.py DetectionCheck): detections in any order."""

from __future__ import annotations

import numpy as np
import pytest

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
                                                              "iou": 0.99, "cuts": {}}}  # fmt: skip
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


# keep_top_k 3: the reference keeps 3, the candidate (float16 scores) another at the cut
CUT = {"keep_top_k": 3, "top_k": 100, "confidence_threshold": 0.01}
TIED = np.array([0, 2, 0.29990, 0.60, 0.10, 0.80, 0.30], np.float32)  # a new box, 1e-4 below


def _cut(got, ref, cuts=CUT, atol=1e-3):
    check = DetectionCheck("det", atol, 0.0, 0.99, cuts)
    check.add(0, got[None, None], ref[None, None])
    return check.result()


def _at_cut(score):
    ref = ROWS.copy()
    ref[1, 2] = 0.3  # the lowest reference score: the keep_top_k cut
    got = ROWS[[0, 2]].copy()
    tied = TIED.copy()
    tied[2] = score
    return np.concatenate([got, tied[None]]), ref


def test_swap_at_keep_top_k_within_tolerance_is_a_listed_cut_tie():
    got, ref = _at_cut(0.2999)
    r = _cut(got, ref)
    assert r["passed"], r["problems"]
    assert r["matched_detections"] == 2
    assert r["cut_ties"] == [
        {"sample": 0, "cut": "keep_top_k", "value": 3, "cut_score": pytest.approx(0.3),
         "candidate": {"row": 2, "score": pytest.approx(0.2999)},
         "reference": {"row": 1, "score": pytest.approx(0.3)}}
    ]  # fmt: skip
    assert r["cuts"] == CUT
    assert not _cut(got, ref, cuts={})["passed"]  # no cut known: an unmatched pair fails


def test_real_swap_at_keep_top_k_far_from_tolerance_fails():
    got, ref = _at_cut(0.29)  # 1e-2 below the cut, atol 1e-3: not a tie
    r = _cut(got, ref)
    assert not r["passed"] and r["cut_ties"] == []
    assert r["problems"] == [
        "sample 0: unmatched detections [2]",
        "sample 0: unmatched reference detections [1]",
    ]
    got, ref = _at_cut(0.2999)  # a tie, but the image is not full: keep_top_k cut nothing
    assert not _cut(got, ref, cuts={"keep_top_k": 4})["passed"]
    # a swap of a high-scoring detection is never a tie, whatever the cut score
    got = ROWS.copy()
    got[0, 3:] = [0.6, 0.1, 0.8, 0.3]
    assert not _cut(got, ROWS)["passed"]


def test_detection_at_the_confidence_threshold_on_one_side_is_a_tie():
    extra = np.array([[0, 1, 0.0104, 0.20, 0.60, 0.40, 0.90]], np.float32)
    ref = np.concatenate([ROWS, extra])
    r = _cut(ROWS, ref)  # the candidate scored it just below 0.01 and dropped it
    assert r["passed"], r["problems"]
    assert [(t["cut"], t["reference"]["row"]) for t in r["cut_ties"]] == [
        ("confidence_threshold", 3)
    ]
    assert "candidate" not in r["cut_ties"][0]
    extra[0, 2] = 0.02  # 1e-2 above the threshold: a real miss
    r = _cut(ROWS, np.concatenate([ROWS, extra]))
    assert r["problems"] == [
        "sample 0: 3 detections, the reference has 4",
        "sample 0: unmatched reference detections [3]",
    ]


def test_swap_at_top_k_needs_the_same_label_and_the_lowest_score():
    ref = ROWS.copy()
    got = ROWS.copy()
    got[1, 2] = 0.5004  # the lowest of label 1, another box: the top_k-th candidate swapped
    got[1, 3:] = [0.60, 0.10, 0.80, 0.30]
    r = _cut(got, ref, cuts={"top_k": 2})
    assert r["passed"] and [t["cut"] for t in r["cut_ties"]] == ["top_k"], r
    got[1, 1] = 2  # the same scores under another label: no tie
    assert not _cut(got, ref, cuts={"top_k": 2})["passed"]


def test_cuts_from_the_caffe_source_and_the_recipe(models_dir):
    from pipelines.verify.measure import compare_modes

    d = models_dir / "yufacedetectnet"
    sources = {"prototxt": d / "yufacedetectnet-open-v1.prototxt"}
    recipe = {"source": {"framework": "caffe"},
              "verify": {"outputs": {"detection_out": {"compare": "detections"}}}}  # fmt: skip
    cuts = compare_modes(recipe, ["detection_out"], "fp16", sources)["detection_out"]["cuts"]
    assert cuts == {"keep_top_k": 50, "top_k": 100,
                    "confidence_threshold": float(np.float32(0.01))}  # fmt: skip
    recipe["verify"]["outputs"]["detection_out"]["cuts"] = {"keep_top_k": 20}
    cuts = compare_modes(recipe, ["detection_out"], "fp16", sources)["detection_out"]["cuts"]
    assert cuts["keep_top_k"] == 20 and cuts["top_k"] == 100  # the recipe overrides one
