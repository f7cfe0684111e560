"""Reduction (converters/caffe/layers/reduction.py) against real Caffe.

OpenCV 4.14 has no Reduction layer for Caffe ("Can't create layer ... of type Reduction").
Caffe views the bottom as ``(count(0, axis), count(axis))``, reduces each row (SUM, ASUM = sum
of |x|, SUMSQ = sum of x^2, MEAN = SUM / row length), times ``coeff``; the top keeps
``shape[:axis]`` (0-D for axis 0).

Also the opset test: one net whose ONNX encoding depends on the opset (Split sizes and Squeeze /
Unsqueeze axes as inputs since 13, Reduce* axes as inputs since 18) converts and matches at
opset 13, 17 and the newest one onnxruntime loads.
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import max_opset
from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4


NET = """
input: "data"
input_shape { dim: 2 dim: 3 dim: 4 dim: 5 }
layer { name: "red" type: "Reduction" bottom: "data" top: "red" reduction_param { %s } }
"""

CASES = {
    "sum-all": (SUM, 0, 1.0),
    "sum-axis1": (SUM, 1, 1.0),
    "asum-axis2": (ASUM, 2, 1.0),
    "sumsq-axis-neg": (SUMSQ, -1, 1.0),
    "mean-axis1-coeff": (MEAN, 1, 0.5),
    "mean-all": (MEAN, 0, 1.0),
    "sum-coeff-neg": (SUM, 3, -2.0),
    "asum-coeff": (ASUM, -3, 0.25),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("opset", [13, 17, max_opset()])
def test_reduction(tmp_path, case, opset):
    op, axis, coeff = CASES[case]
    param = f"operation: {op} axis: {axis} coeff: {coeff}"
    model, got, _ = convert_and_compare(
        tmp_path, NET % param, opset=opset, rtol=1e-5, atol=1e-5, opencv=False
    )
    assert got["red"].shape == (2, 3, 4, 5)[: axis % 4]
    assert ("Mul" in op_types(model)) == (coeff != 1.0)


def test_default_is_sum_over_everything(tmp_path):
    _, got, feeds = convert_and_run(tmp_path, NET % "")  # and real Caffe, when set up
    assert got["red"].shape == ()
    np.testing.assert_allclose(got["red"], feeds["data"].astype(np.float64).sum(), atol=1e-4)


@pytest.mark.parametrize(
    ("param", "fragments"),
    [
        ("axis: 4", ["reduction_param.axis 4 is out of range"]),
        ("axis: -5", ["reduction_param.axis -5 is out of range"]),
    ],
    ids=["axis", "axis-neg"],
)
def test_errors(tmp_path, param, fragments):
    expect_error(
        tmp_path, (NET % param).replace('name: "red"', 'name: "bad"'), None, "bad", *fragments
    )


OPSET_NET = """
input: "data"
input_shape { dim: 2 dim: 6 dim: 4 dim: 5 }
layer { name: "sl" type: "Slice" bottom: "data" top: "a" top: "b" top: "c"
        slice_param { axis: 1 slice_point: 1 slice_point: 4 } }
layer { name: "sp" type: "Split" bottom: "b" top: "b1" top: "b2" }
layer { name: "pool" type: "Pooling" bottom: "b1" top: "g" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fl" type: "Flatten" bottom: "g" top: "gf" }
layer { name: "se" type: "Scale" bottom: "b2" bottom: "gf" top: "se" scale_param { axis: 0 } }
layer { name: "cat" type: "Concat" bottom: "c" bottom: "se" bottom: "a" top: "cat" }
layer { name: "crop" type: "Crop" bottom: "cat" bottom: "b" top: "crop" crop_param { axis: 1 offset: 2 offset: 0 offset: 0 } }
layer { name: "perm" type: "Permute" bottom: "crop" top: "perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
"""


@pytest.mark.parametrize("opset", [13, 17, max_opset()])
def test_opsets(tmp_path, opset):
    """Slice (Split), Split, Scale's (N, C) operand (Unsqueeze), Crop (Slice) vs OpenCV and
    Caffe; the Reduction and ArgMax graph (Reduce*/TopK/ArgMax) vs real Caffe."""
    model, _, _ = convert_and_compare(tmp_path, OPSET_NET, opset=opset)
    assert model.opset_import[0].version == opset
    assert {"Split", "Unsqueeze", "Slice"} <= set(op_types(model))

    net = (
        NET % f"operation: {SUMSQ} axis: 2 coeff: 3"
        + """
layer { name: "am" type: "ArgMax" bottom: "data" top: "am" argmax_param { top_k: 1 } }
layer { name: "mx" type: "ArgMax" bottom: "data" top: "mx" argmax_param { axis: 2 out_max_val: true } }
layer { name: "k2" type: "ArgMax" bottom: "data" top: "k2" argmax_param { axis: 1 top_k: 2 } }
"""
    )
    model, _, _ = convert_and_compare(tmp_path / "red", net, opset=opset, rtol=1e-5, opencv=False)
    assert {"ReduceSumSquare", "ReduceMax", "ArgMax", "TopK"} <= set(op_types(model))
