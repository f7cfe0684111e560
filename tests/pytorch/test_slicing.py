import numpy as np
import pytest
from onnx import helper

from tests.pytorch.helpers import compare, graph_model, node


@pytest.mark.parametrize("split", [None, [1, 3], [2, 2]])
def test_split(split):
    inits = {"sp": np.array(split, np.int64)} if split else {}
    ins = ["x", "sp"] if split else ["x"]
    m = graph_model(
        [node("Split", ins, ["a", "b"], axis=1)], {"x": [2, 4, 3]}, {"a": None, "b": None}, inits
    )
    compare(m, atol=0)


@pytest.mark.parametrize(
    "starts,ends,axes,steps",
    [([1], [3], [1], [1]), ([0, -3], [2, 100], [0, 2], [1, 2]), ([-100], [-1], [-1], [1])],
)
def test_slice(starts, ends, axes, steps):
    inits = {k: np.array(v, np.int64) for k, v in dict(s=starts, e=ends, a=axes, t=steps).items()}
    m = graph_model(
        [node("Slice", ["x", "s", "e", "a", "t"], ["y"])], {"x": [3, 4, 6]}, {"y": None}, inits
    )
    compare(m, atol=0)


def test_negative_step_is_refused():
    from converters.errors import UnsupportedError
    from converters.pytorch.convert import generate

    inits = {k: np.array(v, np.int64) for k, v in dict(s=[3], e=[0], a=[1], t=[-1]).items()}
    m = graph_model(
        [node("Slice", ["x", "s", "e", "a", "t"], ["y"])], {"x": [3, 4]}, {"y": None}, inits
    )
    with pytest.raises(UnsupportedError, match=r"'slice_0' \(Slice\): step -1"):
        generate(m)


@pytest.mark.parametrize("idx", [1, -1, [2, 0, 2]])
def test_gather(idx):
    m = graph_model(
        [helper.make_node("Gather", ["x", "i"], ["y"], name="g", axis=1)],
        {"x": [2, 4, 3]},
        {"y": None},
        {"i": np.array(idx, np.int64)},
    )
    compare(m, atol=0)
