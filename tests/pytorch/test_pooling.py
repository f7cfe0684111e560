import pytest

from tests.pytorch.helpers import compare, graph_model, node


@pytest.mark.parametrize(
    "k,s,pads,ceil",
    [
        ([3, 3], [2, 2], [0, 0, 0, 0], 0),
        ([3, 3], [2, 2], [0, 0, 1, 1], 0),
        ([3, 3], [2, 2], [0, 0, 0, 0], 1),
        ([3, 3], [2, 2], [1, 1, 1, 1], 1),
        ([2, 2], [2, 2], [1, 0, 0, 1], 0),
        ([3, 2], [1, 2], [1, 1, 1, 1], 0),
    ],
)
def test_max_pool(k, s, pads, ceil):
    m = graph_model(
        [node("MaxPool", ["x"], ["y"], kernel_shape=k, strides=s, pads=pads, ceil_mode=ceil)],
        {"x": [1, 3, 10, 11]},
        {"y": None},
    )
    compare(m, atol=0)


@pytest.mark.parametrize("include", [0, 1])
@pytest.mark.parametrize(
    "k,s,pads,ceil",
    [
        ([3, 3], [2, 2], [0, 0, 1, 1], 0),
        ([3, 3], [2, 2], [1, 1, 1, 1], 0),
        ([3, 3], [2, 2], [0, 0, 0, 0], 1),
        ([3, 3], [2, 2], [1, 1, 1, 1], 1),
        ([7, 7], [1, 1], [0, 0, 0, 0], 0),
        ([2, 3], [2, 1], [1, 0, 0, 2], 0),
    ],
)
def test_average_pool(k, s, pads, ceil, include):
    m = graph_model(
        [
            node(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=k,
                strides=s,
                pads=pads,
                ceil_mode=ceil,
                count_include_pad=include,
            )
        ],
        {"x": [1, 3, 10, 11]},
        {"y": None},
    )
    compare(m, atol=1e-6)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op):
    compare(graph_model([node(op, ["x"], ["y"])], {"x": [2, 3, 7, 5]}, {"y": None}), atol=1e-6)
