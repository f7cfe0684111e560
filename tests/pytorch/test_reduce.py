import numpy as np
import pytest

from tests.pytorch.helpers import compare, graph_model, node


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", [[1], [-1, 2], []])
@pytest.mark.parametrize(
    "op,opset", [("ReduceSumSquare", 17), ("ReduceSumSquare", 18), ("ReduceSum", 17),
                 ("ReduceSum", 11), ("ReduceMean", 17), ("ReduceMean", 18)]
)  # fmt: skip
def test_reduce(op, opset, axes, keepdims):
    """Against onnxruntime; axes as an attribute before opset 18 (13 for ReduceSum), an input
    from then on; empty axes: every axis."""
    as_input = opset >= (13 if op == "ReduceSum" else 18)
    inits = {"axes": np.asarray(axes, np.int64)} if as_input and axes else {}
    attrs = {"keepdims": keepdims} | ({} if as_input or not axes else {"axes": axes})
    inputs = ["x", "axes"] if inits else ["x"]
    m = graph_model([node(op, inputs, ["y"], **attrs)], {"x": [2, 3, 4, 5]}, {"y": None},
                    inits, opset=opset)  # fmt: skip
    compare(m, atol=1e-5, rtol=1e-6)


def test_noop_with_empty_axes_is_the_identity():
    m = graph_model([node("ReduceSum", ["x"], ["y"], noop_with_empty_axes=1)],
                    {"x": [2, 3]}, {"y": None})  # fmt: skip
    compare(m, atol=0)
