"""Tile (converters/caffe/layers/tile.py) against a numpy version of Caffe's forward pass.

OpenCV 4.14 cannot run Caffe's Tile layer ("Tile: repeats needs to be treated as parameter but
it is missing"), so the reference is Caffe's TileLayer::Forward_cpu written in numpy: for each of
the ``count(0, axis)`` outer indices, the ``count(axis)`` inner block is copied ``tiles`` times.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.caffe.layer_checks import convert_and_run, expect_error, op_types


def caffe_tile(x: np.ndarray, axis: int, tiles: int) -> np.ndarray:
    axis %= x.ndim
    outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    blocks = x.reshape(outer, inner)
    out_shape = list(x.shape)
    out_shape[axis] *= tiles
    return np.concatenate([blocks] * tiles, axis=1).reshape(out_shape)


NET = """
input: "data"
input_shape { dim: 2 dim: 3 dim: 4 dim: 5 }
layer { name: "tile" type: "Tile" bottom: "data" top: "tile" %s }
layer { name: "relu" type: "ReLU" bottom: "tile" top: "tile" }
"""


@pytest.mark.parametrize(
    ("param", "axis", "tiles"),
    [
        ("tile_param { tiles: 3 }", 1, 3),
        ("tile_param { axis: 0 tiles: 2 }", 0, 2),
        ("tile_param { axis: 2 tiles: 4 }", 2, 4),
        ("tile_param { axis: -1 tiles: 2 }", -1, 2),
        ("tile_param { axis: 3 tiles: 1 }", 3, 1),
    ],
    ids=["default-axis", "axis0", "axis2", "axis-neg", "one-tile"],
)
def test_tile(tmp_path, param, axis, tiles):
    model, got, feeds = convert_and_run(tmp_path, NET % param)
    want = np.maximum(caffe_tile(feeds["data"], axis, tiles), 0)
    assert got["tile"].shape == want.shape
    np.testing.assert_array_equal(got["tile"], want)
    assert op_types(model) == ["Tile", "Relu"]


def test_reference_is_not_np_repeat():
    # Guard on the reference itself: whole blocks repeat (abcabc), elements do not (aabbcc).
    x = np.arange(6, dtype=np.float32).reshape(1, 3, 2)
    np.testing.assert_array_equal(caffe_tile(x, 1, 2).ravel(), np.r_[np.arange(6), np.arange(6)])


@pytest.mark.parametrize(
    ("param", "fragments"),
    [
        ("", ["tile_param.tiles must be given and positive"]),
        ("tile_param { tiles: 0 }", ["got 0"]),
        ("tile_param { axis: 4 tiles: 2 }", ["tile_param.axis 4 is out of range"]),
    ],
    ids=["missing", "zero", "axis"],
)
def test_errors(tmp_path, param, fragments):
    expect_error(
        tmp_path, NET.replace('name: "tile"', 'name: "bad"') % param, None, "bad", *fragments
    )
