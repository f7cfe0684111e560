"""PriorBox, SSD fork (converters/caffe/layers/prior_box.py), folded to a constant.

Every case is checked against ``_caffe_priors``, a loop-for-loop numpy transcription of SSD
Caffe's ``PriorBoxLayer::Forward_cpu`` (float32 centres and sizes, double coordinates), and,
where OpenCV DNN follows Caffe, against OpenCV too. OpenCV differs from SSD Caffe on:
- ``min_size``/``max_size``: Caffe truncates them to int, OpenCV keeps the fraction;
- ``img_size``/``img_h``/``img_w``: OpenCV ignores them and uses the image bottom's size;
- ``clip`` absent: SSD Caffe defaults to false, OpenCV to true;
- ``variance`` absent: Caffe uses 0.1, OpenCV refuses the layer;
those cases are compared with the Caffe transcription only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from google.protobuf import text_format

from converters.caffe.prototxt import parse_prototxt
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

f32 = np.float32


def _caffe_priors(p, fh, fw, ih, iw) -> np.ndarray:
    """SSD Caffe's PriorBox forward for prior_box_param ``p`` (see the module docstring)."""
    ratios = [f32(1)]
    for ar in map(f32, p.aspect_ratio):
        if all(abs(float(ar) - float(a)) >= 1e-6 for a in ratios):
            ratios.append(ar)
            if p.flip:
                ratios.append(f32(1.0 / float(ar)))
    if p.HasField("img_size"):
        ih = iw = p.img_size
    elif p.HasField("img_h"):
        ih, iw = p.img_h, p.img_w
    if p.HasField("step"):
        sh = sw = f32(p.step)
    elif p.HasField("step_h"):
        sh, sw = f32(p.step_h), f32(p.step_w)
    else:
        sh, sw = f32(f32(ih) / f32(fh)), f32(f32(iw) / f32(fw))
    out = []
    for h in range(fh):
        for w in range(fw):
            cx = f32((f32(w) + f32(p.offset)) * sw)
            cy = f32((f32(h) + f32(p.offset)) * sh)
            for s, min_value in enumerate(p.min_size):
                mn = int(min_value)
                boxes = [(f32(mn), f32(mn))]
                if p.max_size:
                    side = f32(math.sqrt(mn * int(p.max_size[s])))
                    boxes.append((side, side))
                for ar in ratios:
                    if abs(float(ar) - 1.0) >= 1e-6:
                        root = math.sqrt(float(ar))
                        boxes.append((f32(mn * root), f32(mn / root)))
                for bw, bh in boxes:
                    out += [(float(cx) - float(bw) / 2.0) / iw, (float(cy) - float(bh) / 2.0) / ih,
                            (float(cx) + float(bw) / 2.0) / iw, (float(cy) + float(bh) / 2.0) / ih]  # fmt: skip
    coords = np.array(out, dtype=f32)
    if p.clip:
        coords = np.clip(coords, 0, 1)
    variance = list(p.variance) or [0.1]
    variances = np.resize(np.array(variance, dtype=f32), coords.size)
    return np.stack([coords, variances])[None]


def _net(params: list[str], feature_sizes, image=(300, 300)) -> str:
    """One input per feature map and one image input; a PriorBox per map, then Concat axis 2."""
    text = f'input: "data"\ninput_shape {{ dim: 1 dim: 3 dim: {image[0]} dim: {image[1]} }}\n'
    for i, (fh, fw) in enumerate(feature_sizes):
        text += f'input: "f{i}"\ninput_shape {{ dim: 1 dim: 2 dim: {fh} dim: {fw} }}\n'
    for i, param in enumerate(params):
        text += (f'layer {{ name: "pb{i}" type: "PriorBox" bottom: "f{i}" bottom: "data" '
                 f'top: "pb{i}" prior_box_param {{ {param} }} }}\n')  # fmt: skip
    if len(params) > 1:
        bottoms = " ".join(f'bottom: "pb{i}"' for i in range(len(params)))
        text += f'layer {{ name: "mbox_priorbox" type: "Concat" {bottoms} top: "mbox_priorbox" '
        text += "concat_param { axis: 2 } }\n"
    return text


def _reference(params, feature_sizes, image=(300, 300)) -> np.ndarray:
    from converters.caffe.proto import caffe_pb2

    parts = []
    for param, (fh, fw) in zip(params, feature_sizes, strict=True):
        p = text_format.Parse(param, caffe_pb2.PriorBoxParameter())
        parts.append(_caffe_priors(p, fh, fw, *image))
    return np.concatenate(parts, axis=2)


# MobileNet-SSD at 300x300: conv11, conv13, conv14_2 .. conv17_2 feature maps.
MOBILENET_SSD_MAPS = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def test_mobilenet_ssd_priors(tmp_path, models_dir):
    net = parse_prototxt(models_dir / "architectures" / "MobileNetSSD_deploy.prototxt")
    layers = [lyr for lyr in net.layer if lyr.type == "PriorBox"]
    assert [lyr.bottom[0] for lyr in layers] == [
        "conv11", "conv13", "conv14_2", "conv15_2", "conv16_2", "conv17_2"]  # fmt: skip
    params = [text_format.MessageToString(lyr.prior_box_param, as_one_line=True) for lyr in layers]
    model, got, _ = convert_and_compare(tmp_path, _net(params, MOBILENET_SSD_MAPS))
    assert got["mbox_priorbox"].shape == (1, 2, 1917 * 4)  # the 1917 priors of MobileNet-SSD
    np.testing.assert_allclose(got["mbox_priorbox"], _reference(params, MOBILENET_SSD_MAPS),
                               atol=1e-6, rtol=0)  # fmt: skip
    assert op_types(model) == ["Constant"] * 6 + ["Concat"]


V4 = "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2"

OPENCV_CASES = {
    "two-sizes-step-offset": (
        f"min_size: 30 min_size: 50 max_size: 60 max_size: 80 aspect_ratio: 2 flip: false "
        f"clip: true step: 16 offset: 0.3 {V4}", (4, 6), (64, 96)),
    "clip-overhang": ("min_size: 40 max_size: 70 aspect_ratio: 3 clip: true variance: 0.2",
                      (3, 3), (64, 64)),
    "no-clip-overhang": ("min_size: 40 aspect_ratio: 3 clip: false variance: 0.2",
                         (3, 3), (64, 64)),
    "dedupe-ratios": (f"min_size: 20 aspect_ratio: 2 aspect_ratio: 2 aspect_ratio: 0.5 "
                      f"aspect_ratio: 1 clip: false {V4}", (2, 3), (40, 60)),
    "step-h-w": ("min_size: 16 aspect_ratio: 2 clip: false variance: 0.1 step_h: 8 step_w: 12",
                 (4, 5), (32, 60)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(OPENCV_CASES))
def test_against_opencv_and_caffe(tmp_path, case):
    param, fmap, image = OPENCV_CASES[case]
    _, got, _ = convert_and_compare(tmp_path, _net([param], [fmap], image))
    np.testing.assert_allclose(got["pb0"], _reference([param], [fmap], image), atol=1e-6, rtol=0)


CAFFE_ONLY_CASES = {
    "fractional-sizes": (f"min_size: 60.7 max_size: 90.2 aspect_ratio: 2 clip: false {V4}",
                         (3, 3), (300, 300)),
    "img_size": ("min_size: 30 aspect_ratio: 2 clip: false variance: 0.2 img_size: 120",
                 (4, 6), (64, 96)),
    "img_h-img_w": ("min_size: 30 aspect_ratio: 2 aspect_ratio: 0.5 aspect_ratio: 3 clip: false "
                    "variance: 0.2 img_h: 100 img_w: 150 step_h: 10 step_w: 12", (4, 6), (64, 96)),
    "clip-default-false": ("min_size: 40 aspect_ratio: 3 variance: 0.2", (3, 3), (64, 64)),
    "variance-default": ("min_size: 30 aspect_ratio: 2 clip: false", (2, 2), (64, 64)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CAFFE_ONLY_CASES))
def test_opencv_divergences_vs_caffe_reference(tmp_path, case):
    param, fmap, image = CAFFE_ONLY_CASES[case]
    # This Caffe build's PriorBox defaults clip to true; SSD's caffe.proto (weiliu89/caffe,
    # whose models these are) to false, so the default-clip case is SSD's numpy forward only.
    caffe = "clip" in param
    _, got, _ = convert_and_run(tmp_path, _net([param], [fmap], image), caffe=caffe)
    np.testing.assert_allclose(got["pb0"], _reference([param], [fmap], image), atol=1e-6, rtol=0)


def test_clip_default_is_false(tmp_path):
    # Boxes of 40 * sqrt(3) around centres near the border stick out of [0, 1] unclipped.
    # SSD's default (not this Caffe build's, see above): no real-Caffe comparison.
    _, got, _ = convert_and_run(
        tmp_path, _net(["min_size: 40 aspect_ratio: 3"], [(3, 3)], (64, 64)), caffe=False
    )
    assert got["pb0"][0, 0].min() < 0 and got["pb0"][0, 0].max() > 1


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("aspect_ratio: 2", "prior_box_param needs at least one min_size"),
        ("min_size: -3", "prior_box_param.min_size must be positive"),
        ("min_size: 30 max_size: 20", "max_size 20 must be greater than min_size 30"),
        ("min_size: 30 min_size: 40 max_size: 50", "1 max_size value(s) for 2 min_size value(s)"),
        ("min_size: 30 variance: 0.1 variance: 0.2", "variance must be 1 or 4 positive values"),
        ("min_size: 30 step: 8 step_h: 8 step_w: 8", "either prior_box_param.step or step_h/step_w"),
        ("min_size: 30 img_h: 300", "prior_box_param.img_h/img_w must both be positive"),
        ("min_size: 30 width: 20", "prior_box_param.width (an OpenCV extension) is not supported"),
    ],
    ids=["no-min", "neg-min", "max-below-min", "max-count", "variance-2", "step-twice",
         "img_h-alone", "opencv-width"],
)  # fmt: skip
def test_bad_params_are_refused(tmp_path, param, fragment):
    expect_error(tmp_path, _net([param], [(2, 2)]), None, "pb0", "(PriorBox)", fragment)


def test_one_bottom_is_refused(tmp_path):
    net = _net(["min_size: 30"], [(2, 2)]).replace(' bottom: "data"', "")
    expect_error(tmp_path, net, None, "pb0",
                 "expected 2 bottoms (feature map, image) and 1 top, got 1 and 1")  # fmt: skip
