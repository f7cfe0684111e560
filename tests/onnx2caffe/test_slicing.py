"""Concat, Split, Slice, Gather -> Caffe Slice / Concat."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node


def _ints(*v):
    return np.array(v, dtype=np.int64)


def test_concat(tmp_path):
    model = make_model([node("Concat", ["a", "b", "c"], "y", axis=-1)],
                       {"a": (1, 2, 3, 4), "b": (1, 2, 3, 1), "c": (1, 2, 3, 2)}, ["y"])  # fmt: skip
    convert_and_compare(tmp_path, model)


def test_split_outputs_are_addressable(tmp_path):
    """Every Split output is a graph output: each becomes top 0 of a layer of its own name."""
    model = make_model([node("Split", ["x", "s"], ["a", "b", "c"], axis=1)], {"x": (1, 6, 2, 2)},
                       ["a", "b", "c"], {"s": _ints(1, 2, 3)})  # fmt: skip
    got, _ = convert_and_compare(tmp_path, model)
    assert [got[k].shape[1] for k in "abc"] == [1, 2, 3]


def test_split_partly_used(tmp_path):
    model = make_model([node("Split", ["x"], ["a", "b"], axis=2, num_outputs=2),
                        node("Relu", ["b"], "y")], {"x": (1, 2, 4, 3)}, ["y"], opset=18)  # fmt: skip
    net, _ = build_net(model)
    assert net.layer[-1].type == "Silence"  # the unused half is consumed, not a net output
    convert_and_compare(tmp_path, model)


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [
        ((1,), (3,), (2,), None),
        ((0, 1), (2, -1), (1, 3), None),
        ((-1,), (-(2**62),), (1,), (-1,)),  # channel reversal
        ((0,), (5,), (3,), (2,)),
    ],
)
def test_slice(tmp_path, starts, ends, axes, steps):
    inits = {"st": _ints(*starts), "en": _ints(*ends), "ax": _ints(*axes)}
    ins = ["x", "st", "en", "ax"]
    if steps:
        inits["sp"] = _ints(*steps)
        ins.append("sp")
    model = make_model([node("Slice", ins, "y")], {"x": (1, 3, 4, 5)}, ["y"], inits)
    convert_and_compare(tmp_path, model)


def test_gather_reverses_channels(tmp_path):
    """Gather [2, 1, 0] on axis 1 (RGB <-> BGR in embedded preprocessing)."""
    model = make_model([node("Gather", ["x", "i"], "y", axis=1)], {"x": (1, 3, 4, 4)}, ["y"],
                       {"i": _ints(2, 1, 0)})  # fmt: skip
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer[1:]] == ["Slice", "Concat"]
    convert_and_compare(tmp_path, model)


def test_gather_scalar_index(tmp_path):
    model = make_model([node("Gather", ["x", "i"], "y", axis=2)], {"x": (1, 3, 4, 5)}, ["y"],
                       {"i": np.array(2, np.int64)})  # fmt: skip
    got, _ = convert_and_compare(tmp_path, model)
    assert got["y"].shape == (1, 3, 5)


def test_refuses_too_many_pieces():
    model = make_model(
        [node("Slice", ["x", "st", "en", "ax", "sp"], "y")],
        {"x": (1, 300)},
        ["y"],
        {"st": _ints(0), "en": _ints(300), "ax": _ints(1), "sp": _ints(2)},
    )
    with pytest.raises(ConversionError, match=r"'slice_y' \(Slice\): needs 150 pieces"):
        build_net(model)
