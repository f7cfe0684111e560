"""ArgMax (converters/caffe/layers/argmax.py) against real Caffe, exactly.

OpenCV 4.14 has no ArgMax layer for Caffe ("Can't create layer ... of type ArgMax"). Caffe's
ArgMaxLayer ranks each item's ``(value, index)`` pairs with ``std::greater`` (equal values:
higher index first) and writes the top ``top_k`` as float indices and/or values, in its own
output layout (flat: ``(N, 1 or 2, top_k)``); the tie cases pin the index order.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error

INPUT = 'input: "data"\ninput_shape {{ {dims} }}\n'


def _net(shape, top_k: int, out_max_val: bool, axis: int | None) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    param = f"top_k: {top_k}" + (" out_max_val: true" if out_max_val else "")
    param += "" if axis is None else f" axis: {axis}"
    return INPUT.format(dims=dims) + (
        f'layer {{ name: "am" type: "ArgMax" bottom: "data" top: "am" argmax_param {{ {param} }} }}'
    )


# (bottom shape, top_k, out_max_val, axis)
CASES = {
    "axis1": ((2, 5, 3, 4), 1, False, 1),
    "axis1-val": ((2, 5, 3, 4), 1, True, 1),
    "axis2-k2": ((2, 5, 3, 4), 2, False, 2),
    "axis-neg-k3-val": ((2, 5, 3, 4), 3, True, -1),
    "axis0-k2": ((2, 5, 3, 4), 2, False, 0),
    "flat": ((2, 5, 3, 4), 1, False, None),
    "flat-k4": ((2, 5, 3, 4), 4, False, None),
    "flat-k3-val": ((2, 5, 3, 4), 3, True, None),
    "flat-val": ((2, 5, 3, 4), 1, True, None),
    "2d-k2": ((3, 7), 2, False, None),
    "2d-k2-val": ((3, 7), 2, True, None),
    "5d-k5": ((2, 3, 2, 2, 2), 5, False, None),
    "5d-axis3-k2": ((2, 3, 2, 2, 2), 2, False, 3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_argmax(tmp_path, case):
    shape, top_k, out_max_val, axis = CASES[case]
    _, got, want = convert_and_compare(
        tmp_path, _net(shape, top_k, out_max_val, axis), atol=0, opencv=False
    )
    assert got["am"].shape == want["am"].shape


@pytest.mark.parametrize("case", list(CASES))
def test_argmax_ties(tmp_path, case):
    # Integer-valued inputs in a small range tie everywhere: Caffe ranks the higher index first.
    shape, top_k, out_max_val, axis = CASES[case]
    data = np.random.default_rng(11).integers(0, 3, shape).astype(np.float32)
    net = _net(shape, top_k, out_max_val, axis)
    convert_and_compare(tmp_path, net, feeds={"data": data}, atol=0, opencv=False)


@pytest.mark.parametrize(
    ("top_k", "axis", "fragments"),
    [
        (6, 1, ["top_k 6 must be in 1..5"]),
        (61, None, ["top_k 61 must be in 1..60"]),
        (0, None, ["top_k 0 must be in 1..60"]),
        (1, 4, ["argmax_param.axis 4 is out of range"]),
    ],
    ids=["k-axis", "k-flat", "k-zero", "axis"],
)
def test_errors(tmp_path, top_k, axis, fragments):
    net = _net((2, 5, 3, 4), top_k, False, axis).replace('name: "am"', 'name: "bad"')
    expect_error(tmp_path, net, None, "bad", *fragments)
