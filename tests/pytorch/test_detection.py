"""Caffe's DetectionOutput in the PyTorch writer (converters/pytorch/detection.py, ssd.py).

References, neither sharing code with the generated torch: the loop-for-loop numpy
transcription of SSD-Caffe's forward (``ApplyNMSFast`` etc., tests/caffe/test_detection_output.py)
and real Caffe (the side runtime). Rows are compared row for row (same count, same order).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from converters.pytorch.convert import onnx_to_pytorch
from converters.pytorch.runners import GeneratedRunner, Pt2Runner
from converters.pytorch.ssd import detection_output_source
from tests.caffe import helpers
from tests.caffe.helpers import write_net
from tests.caffe.test_detection_output import _caffe_detection_output, _feeds, _net, _nms

torch = pytest.importorskip("torch")
f32 = np.float32


def _generated():
    """The functions exactly as the generated model.py holds them."""
    ns: dict = {}
    exec(compile("import torch\n" + detection_output_source(), "model.py", "exec"), ns)
    return ns


# Hard cases for the greedy scan: (boxes, scores), normalized coordinates unless said.
SAME = [0.1, 0.1, 0.4, 0.4]
HARD = {
    # equal scores on identical boxes: the lower index is kept, the rest suppressed
    "ties": ([SAME, SAME, SAME, [0.6, 0.6, 0.9, 0.9]], [0.5, 0.5, 0.5, 0.5]),
    # a chain: 0 suppresses 1; 1 would suppress 2 but is not kept, so 2 stays
    "chain": ([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4], [0.3, 0.0, 0.7, 0.4]],
              [0.9, 0.8, 0.7]),
    # overlap exactly 1/3 with nms_threshold 1/3 (float32): kept (Caffe keeps when <=)
    "at_threshold": ([[0.0, 0.0, 0.5, 1.0], [0.25, 0.0, 0.75, 1.0]], [0.9, 0.8]),
    # touching boxes overlap 0; an inverted box has size 0 and never overlaps
    "touch_inverted": ([[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], [0.4, 0.4, 0.1, 0.1],
                        [0.1, 0.1, 0.4, 0.4]], [0.9, 0.8, 0.7, 0.6]),
    # scores below and at the threshold are no candidates; ties at the top_k cut
    "threshold_topk": ([[0.1 * i, 0.0, 0.1 * i + 0.05, 0.05] for i in range(8)],
                       [0.3, 0.3, 0.3, 0.3, 0.3, 0.2, 0.01, 0.005]),
}  # fmt: skip


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("case", sorted(HARD))
@pytest.mark.parametrize("top_k", [-1, 3])
def test_generated_nms_is_caffes_apply_nms_fast(case, top_k, normalized):
    """ssd_detection_output (CORNER code, offsets in target, zero offsets: the decoded boxes
    are the priors) against the numpy transcription of Caffe: kept boxes, order, scores."""
    boxes, scores = HARD[case]
    boxes = np.asarray(boxes, f32) * (1 if normalized else 10)
    p = len(boxes)
    prior = np.stack([boxes.ravel(), np.full(p * 4, 0.1, f32)])[None].astype(f32)
    loc = np.zeros((1, p * 4), f32)
    conf = np.stack([1 - np.asarray(scores, f32), np.asarray(scores, f32)], 1).reshape(1, -1)
    nms_threshold = float(f32(1 / 3)) if case == "at_threshold" else 0.3
    param = {"nms_threshold": nms_threshold, "top_k": top_k, "confidence_threshold": 0.01,
             "code_type": "CORNER", "variance_encoded_in_target": True}  # fmt: skip
    want = _caffe_detection_output(loc, conf, prior, num_classes=2, normalized=normalized,
                                   **param)  # fmt: skip
    got = _generated()["ssd_detection_output"](
        torch.from_numpy(loc), torch.from_numpy(conf), torch.from_numpy(prior), num_classes=2,
        labels=[1], share_location=True, code_type=1, variance_encoded=True,
        normalized=normalized, threshold=float(f32(0.01)), nms_threshold=float(f32(nms_threshold)),
        top_k=top_k, keep_top_k=-1,
    ).numpy()  # fmt: skip
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)
    # the transcription's own scan keeps what the rows show (the case is not vacuous)
    kept = _nms([list(b) for b in boxes], [f32(s) for s in scores], f32(0.01),
                f32(nms_threshold), top_k, normalized)  # fmt: skip
    assert [list(r[3:]) for r in want[0, 0]] == [list(boxes[k]) for k in kept]
    # ties at top_k 3: the three equal boxes come first (lower index), the fourth is cut
    expect = {("ties", -1): [0, 3], ("ties", 3): [0], ("chain", -1): [0, 2],
              ("at_threshold", -1): [0, 1], ("threshold_topk", 3): [0, 1, 2]}.get((case, top_k))  # fmt: skip
    if expect is not None and normalized:  # (pixel boxes: the +1 moves the overlaps)
        assert kept == expect


def _convert(tmp_path, text):
    proto, weights = write_net(tmp_path, text)
    model = caffe_to_onnx(proto, weights)
    onnx_to_pytorch(model, tmp_path / "pt")
    return proto, weights


CASES = {
    "center_keep_top_k": dict(num_classes=3, code_type="CENTER_SIZE", nms_threshold=0.45,
                              top_k=20, keep_top_k=7, confidence_threshold=0.2),
    "share_false_bg2": dict(num_classes=3, share_location=False, background_label_id=2,
                            code_type="CORNER_SIZE", nms_threshold=0.3, top_k=15,
                            confidence_threshold=0.1),
    "batch_no_threshold": dict(n=2, num_classes=2, code_type="CENTER_SIZE", nms_threshold=0.5,
                               top_k=10, keep_top_k=12),
    "empty_batch": dict(n=2, num_classes=2, code_type="CORNER", nms_threshold=0.3, top_k=10,
                        confidence_threshold=0.999999),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_pt2_matches_real_caffe_and_transcription(tmp_path, case):
    """A lone DetectionOutput: model.pt2 (and model.py) against the numpy transcription and
    real Caffe, row for row at 1e-5 (the row count is data-dependent in the archive)."""
    param = dict(CASES[case])
    n, classes = param.pop("n", 1), param.pop("num_classes")
    share = param.pop("share_location", True)
    p = 40
    proto, weights = _convert(tmp_path, _net(n, p, classes, share, **param))
    feeds = _feeds(n, p, classes, share, seed=3)
    got = Pt2Runner(tmp_path / "pt" / "model.pt2").run(feeds)["det"]
    py = GeneratedRunner(tmp_path / "pt" / "model.py").run(feeds)["det"]
    np.testing.assert_array_equal(py, got)
    want = _caffe_detection_output(feeds["loc"], feeds["conf"], feeds["prior"],
                                   num_classes=classes, share_location=share, **param)  # fmt: skip
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    if case == "empty_batch":
        assert got.shape == (1, 1, 2, 7) and (got[0, 0, :, 1:] == -1).all()
    else:
        assert got.shape[2] > 3
    helpers.require_caffe()
    real = helpers.run_caffe(proto, weights, feeds, ["det"])["det"]
    assert real.shape == got.shape, (real.shape, got.shape)
    np.testing.assert_allclose(got, real, atol=1e-5, rtol=0)


def test_too_many_candidates_is_refused_in_one_line(tmp_path):
    text = _net(1, 1100, 2, code_type="CENTER_SIZE", nms_threshold=0.3)  # top_k unset
    with pytest.raises(ConversionError) as err:
        _convert(tmp_path, text)
    msg = str(err.value)
    assert "\n" not in msg and "'det'" in msg and "1100 NMS candidates" in msg, msg
    assert not (tmp_path / "pt" / "model.pt2").exists()


def test_nms_without_record_is_refused_in_one_line(tmp_path):
    proto, weights = write_net(tmp_path, _net(1, 20, 2, code_type="CORNER", nms_threshold=0.3))
    model = caffe_to_onnx(proto, weights)
    del model.metadata_props[:]  # another exporter's NMS: no DetectionOutput record
    with pytest.raises(ConversionError) as err:
        onnx_to_pytorch(model, tmp_path / "pt")
    msg = str(err.value)
    assert "\n" not in msg and "(Loop)" in msg and "data-dependent shapes" in msg, msg
    assert not (tmp_path / "pt").exists() or not any((tmp_path / "pt").iterdir())
