import pytest

from tests.pytorch.helpers import compare, graph_model, node


@pytest.mark.parametrize("opset,axis", [(17, 1), (17, -1), (17, 2), (11, 1), (11, 2)])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax(op, opset, axis):
    m = graph_model(
        [node(op, ["x"], ["y"], axis=axis)], {"x": [2, 3, 4, 5]}, {"y": None}, opset=opset
    )
    compare(m, atol=1e-6)
