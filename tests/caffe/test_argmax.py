"""ArgMax (converters/caffe/layers/argmax.py) against a numpy version of Caffe's forward pass.

OpenCV 4.14 has no ArgMax layer for Caffe ("Can't create layer ... of type ArgMax"), so the
reference below follows ArgMaxLayer (Reshape + Forward_cpu) line by line: per item, the
``(value, index)`` pairs are ranked with ``std::greater`` (equal values: higher index first),
the top ``top_k`` written as float indices and/or values, in Caffe's output layout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.caffe.layer_checks import convert_and_run, expect_error

INPUT = 'input: "data"\ninput_shape {{ {dims} }}\n'


def caffe_argmax(x: np.ndarray, top_k: int, out_max_val: bool, axis: int | None) -> np.ndarray:
    flat = x.ravel()
    if axis is not None:
        axis %= x.ndim
        shape = list(x.shape)
        shape[axis] = top_k
        dim, axis_dist = x.shape[axis], math.prod(x.shape[axis + 1 :])
    else:
        shape = [x.shape[0], 2 if out_max_val else 1, top_k] + [1] * (max(x.ndim, 3) - 3)
        dim, axis_dist = math.prod(x.shape[1:]), 1
    top = np.zeros(math.prod(shape), np.float32)
    for i in range(flat.size // dim):
        base = i // axis_dist * dim * axis_dist + i % axis_dist
        pairs = [(flat[base + j * axis_dist], j) for j in range(dim)]
        ranked = sorted(pairs, reverse=True)[:top_k]  # std::greater on (value, index)
        for j, (value, index) in enumerate(ranked):
            out = (i // axis_dist * top_k + j) * axis_dist + i % axis_dist
            if axis is not None:
                top[out] = value if out_max_val else index
            elif out_max_val:
                top[2 * i * top_k + j] = index
                top[2 * i * top_k + top_k + j] = value
            else:
                top[i * top_k + j] = index
    return top.reshape(shape)


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
    _, got, feeds = convert_and_run(tmp_path, _net(shape, top_k, out_max_val, axis))
    want = caffe_argmax(feeds["data"], top_k, out_max_val, axis)
    assert got["am"].shape == want.shape
    np.testing.assert_array_equal(got["am"], want)


@pytest.mark.parametrize("case", list(CASES))
def test_argmax_ties(tmp_path, case):
    # Integer-valued inputs in a small range tie everywhere: Caffe ranks the higher index first.
    shape, top_k, out_max_val, axis = CASES[case]
    data = np.random.default_rng(11).integers(0, 3, shape).astype(np.float32)
    net = _net(shape, top_k, out_max_val, axis)
    _, got, _ = convert_and_run(tmp_path, net, feeds={"data": data})
    np.testing.assert_array_equal(got["am"], caffe_argmax(data, top_k, out_max_val, axis))


def test_reference_breaks_ties_towards_higher_index():
    x = np.array([[1, 3, 3, 0]], np.float32)
    np.testing.assert_array_equal(caffe_argmax(x, 2, False, 1), [[2, 1]])


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
