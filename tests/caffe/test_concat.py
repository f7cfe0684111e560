"""Concat and Slice (converters/caffe/layers/concat.py).

Compared with OpenCV DNN at atol 1e-5, except for the legacy ``concat_dim`` / ``slice_dim``
fields: OpenCV 4.14 ignores both and always uses ``axis`` (default 1), where Caffe lets the
legacy field win (``ConcatLayer::Reshape``, ``SliceLayer::Reshape``). Those cases are checked
against numpy's concatenate/split, which is Caffe's forward pass for these layers.

OpenCV cannot hand back top ``i > 0`` of a multi-top layer unless a later layer consumes it, so
the Slice nets join every top again with a Concat in reverse order (which also catches wrong
cut points: the blocks come back in a different place).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types


def _inputs(**shapes) -> str:
    return "".join(
        f'input: "{n}"\ninput_shape {{ {" ".join(f"dim: {d}" for d in s)} }}\n'
        for n, s in shapes.items()
    )


def _concat_net(shapes, param: str) -> str:
    bottoms = " ".join(f'bottom: "{n}"' for n in shapes)
    return (
        _inputs(**shapes) + f'layer {{ name: "cat" type: "Concat" {bottoms} top: "cat" {param} }}'
    )


@pytest.mark.parametrize(
    ("param", "shapes", "out_shape"),
    [
        ("", {"a": (2, 3, 4, 5), "b": (2, 1, 4, 5), "c": (2, 2, 4, 5)}, (2, 6, 4, 5)),
        ("concat_param { axis: 2 }", {"a": (1, 3, 2, 5), "b": (1, 3, 4, 5)}, (1, 3, 6, 5)),
        ("concat_param { axis: -1 }", {"a": (1, 3, 4, 2), "b": (1, 3, 4, 3)}, (1, 3, 4, 5)),
        ("concat_param { axis: 0 }", {"a": (1, 3, 4, 5), "b": (2, 3, 4, 5)}, (3, 3, 4, 5)),
        ("", {"a": (2, 3), "b": (2, 4)}, (2, 7)),
    ],
    ids=["default-3-inputs", "axis2", "axis-neg", "axis0", "2d"],
)
def test_concat(tmp_path, param, shapes, out_shape):
    model, got, _ = convert_and_compare(tmp_path, _concat_net(shapes, param))
    assert got["cat"].shape == out_shape
    assert op_types(model) == ["Concat"]


@pytest.mark.parametrize(
    ("param", "axis"),
    [("concat_param { concat_dim: 2 }", 2), ("concat_param { concat_dim: 3 }", 3)],
    ids=["concat_dim", "concat_dim-3"],
)
def test_concat_legacy_dim(tmp_path, param, axis):
    """numpy reference: OpenCV ignores concat_dim (see module docstring)."""
    shapes = {"a": (1, 2, 3, 4), "b": (1, 2, 3, 4), "c": (1, 2, 3, 4)}
    _, got, feeds = convert_and_run(tmp_path, _concat_net(shapes, param))
    want = np.concatenate([feeds["a"], feeds["b"], feeds["c"]], axis=axis)
    np.testing.assert_array_equal(got["cat"], want)


def _slice_net(ntops: int, param: str, axis: int) -> str:
    tops = " ".join(f'top: "s{i}"' for i in range(ntops))
    back = " ".join(f'bottom: "s{i}"' for i in reversed(range(ntops)))
    return _inputs(data=(2, 6, 4, 5)) + (
        f'layer {{ name: "sl" type: "Slice" bottom: "data" {tops} {param} }}\n'
        f'layer {{ name: "back" type: "Concat" {back} top: "back" concat_param {{ axis: {axis} }} }}'
    )


@pytest.mark.parametrize(
    ("param", "ntops", "axis", "sizes"),
    [
        ("slice_param { slice_point: 1 slice_point: 4 }", 3, 1, [1, 3, 2]),
        ("", 3, 1, [2, 2, 2]),
        ("slice_param { axis: 3 slice_point: 2 }", 2, 3, [2, 3]),
        ("slice_param { axis: -2 }", 2, 2, [2, 2]),
        ("slice_param { axis: 1 }", 1, 1, [6]),
    ],
    ids=["points-axis1", "equal-3", "points-axis3", "equal-axis-neg", "one-top"],
)
def test_slice(tmp_path, param, ntops, axis, sizes):
    data = np.random.default_rng(1).standard_normal((2, 6, 4, 5)).astype(np.float32)
    model, got, _ = convert_and_compare(
        tmp_path, _slice_net(ntops, param, axis), feeds={"data": data}
    )
    pieces = np.split(data, np.cumsum(sizes)[:-1], axis=axis)
    np.testing.assert_array_equal(got["back"], np.concatenate(pieces[::-1], axis=axis))
    assert op_types(model) == ["Split", "Concat"]


def test_slice_legacy_dim(tmp_path):
    """numpy reference: OpenCV ignores slice_dim (see module docstring)."""
    net = _inputs(data=(2, 6, 4, 5)) + (
        'layer { name: "sl" type: "Slice" bottom: "data" top: "s0" top: "s1" top: "s2" '
        "slice_param { slice_dim: 3 slice_point: 1 slice_point: 3 } }"
    )
    _, got, feeds = convert_and_run(tmp_path, net)
    want = np.split(feeds["data"], [1, 3], axis=3)
    for i in range(3):
        np.testing.assert_array_equal(got[f"s{i}"], want[i])


@pytest.mark.parametrize(
    ("layer", "param", "legacy"),
    [("Concat", "concat_param { axis: 1 concat_dim: 3 }", "concat_dim"),
     ("Slice", "slice_param { axis: 1 slice_dim: 3 }", "slice_dim")],
    ids=["concat", "slice"],
)  # fmt: skip
def test_axis_and_legacy_dim_together_are_refused(tmp_path, layer, param, legacy):
    # Real Caffe: "Either axis or concat_dim should be specified; not both." (a CHECK abort).
    net = _inputs(data=(2, 6, 4, 5)) + (
        f'layer {{ name: "l" type: "{layer}" bottom: "data" top: "t0" {param} }}'
    )
    expect_error(tmp_path, net, None, "l", f"({layer})", f"sets both axis and the legacy {legacy}")


V1_NET = """
name: "v1"
input: "data"
input_dim: 2
input_dim: 6
input_dim: 3
input_dim: 4
layers {{ name: "sl" type: SLICE bottom: "data" top: "a" top: "b" top: "c"
         slice_param {{ slice_dim: {dim} slice_point: 1 slice_point: 3 }} }}
layers {{ name: "relu" type: RELU bottom: "b" top: "b" }}
layers {{ name: "cat" type: CONCAT bottom: "c" bottom: "a" bottom: "b" top: "cat"
         concat_param {{ concat_dim: {dim} }} }}
"""


def test_v1_slice_concat(tmp_path):
    # slice_dim/concat_dim 1 equal OpenCV's default axis, so OpenCV reads this net right.
    _, got, _ = convert_and_compare(tmp_path, V1_NET.format(dim=1))
    assert got["cat"].shape == (2, 6, 3, 4)


def test_v1_slice_concat_spatial(tmp_path):
    """numpy reference: OpenCV ignores slice_dim/concat_dim (see module docstring)."""
    _, got, feeds = convert_and_run(tmp_path, V1_NET.format(dim=3))
    a, b, c = np.split(feeds["data"], [1, 3], axis=3)
    np.testing.assert_array_equal(got["cat"], np.concatenate([c, a, np.maximum(b, 0)], axis=3))


@pytest.mark.parametrize(
    ("layer", "fragments"),
    [
        (
            'type: "Slice" bottom: "a" top: "x" top: "y" slice_param { slice_point: 1 slice_point: 2 }',
            ["2 tops need 1 slice_point value(s), got 2"],
        ),
        (
            'type: "Slice" bottom: "a" top: "x" top: "y" top: "z" slice_param { slice_point: 3 '
            "slice_point: 2 }",
            ["strictly increasing"],
        ),
        (
            'type: "Slice" bottom: "a" top: "x" top: "y" slice_param { slice_point: 4 }',
            ["inside (0, 4)"],
        ),
        ('type: "Slice" bottom: "a" top: "x" top: "y" top: "z"', ["size 4 equally into 3 tops"]),
        ('type: "Slice" bottom: "a" top: "x" slice_param { axis: 4 }', ["axis 4 is out of range"]),
        (
            'type: "Concat" bottom: "a" bottom: "b" top: "x" concat_param { axis: 1 }',
            ["bottom 1 'b' has shape [1, 4, 3, 3]", "outside axis 1"],
        ),
        (
            'type: "Concat" bottom: "a" bottom: "b" top: "x" concat_param { concat_dim: 5 }',
            ["concat_dim 5 is out of range"],
        ),
        ('type: "Concat" bottom: "a" bottom: "nope" top: "x"', ["bottom blob 'nope'"]),
    ],
    ids=[
        "point-count",
        "not-increasing",
        "point-at-end",
        "uneven",
        "slice-axis",
        "concat-shape",
        "concat-dim",
        "missing-bottom",
    ],
)
def test_errors(tmp_path, layer, fragments):
    net = _inputs(a=(1, 4, 2, 3), b=(1, 4, 3, 3)) + f'layer {{ name: "bad" {layer} }}'
    expect_error(tmp_path, net, None, "bad", *fragments)
