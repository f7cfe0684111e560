"""Tile (converters/caffe/layers/tile.py) against real Caffe, exactly.

OpenCV 4.14 cannot run Caffe's Tile layer ("Tile: repeats needs to be treated as parameter but
it is missing"). Caffe copies, for each of the ``count(0, axis)`` outer indices, the whole
``count(axis)`` inner block ``tiles`` times (abcabc, not np.repeat's aabbcc).
"""

from __future__ import annotations

import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import expect_error, op_types

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
    model, got, _ = convert_and_compare(tmp_path, NET % param, atol=0, opencv=False)
    shape = [2, 3, 4, 5]
    shape[axis] *= tiles
    assert list(got["tile"].shape) == shape
    assert op_types(model) == ["Tile", "Relu"]


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
