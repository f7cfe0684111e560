import numpy as np
import pytest

from tests.pytorch.helpers import compare, graph_model, node

RNG = np.random.default_rng(1)


@pytest.mark.parametrize(
    "pads,strides,dil,group",
    [
        ([1, 1, 1, 1], [1, 1], [1, 1], 1),
        ([0, 0, 1, 1], [2, 2], [1, 1], 1),
        ([2, 2, 2, 2], [1, 1], [2, 2], 4),
        ([0, 1, 2, 0], [1, 2], [1, 1], 2),
    ],
)
def test_conv(pads, strides, dil, group):
    w = RNG.standard_normal((8, 4 // group, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(8).astype(np.float32)
    m = graph_model(
        [
            node(
                "Conv",
                ["x", "w", "b"],
                ["y"],
                pads=pads,
                strides=strides,
                dilations=dil,
                group=group,
                kernel_shape=[3, 3],
            )
        ],
        {"x": [1, 4, 9, 10]},
        {"y": None},
        {"w": w, "b": b},
    )
    code = compare(m, atol=1e-5)
    assert "nn.Conv2d(4, 8" in code
    assert ("F.pad" in code) == (pads[:2] != pads[2:])


def test_conv_without_bias():
    w = RNG.standard_normal((3, 2, 1, 1)).astype(np.float32)
    m = graph_model([node("Conv", ["x", "w"], ["y"])], {"x": [2, 2, 5, 5]}, {"y": None}, {"w": w})
    compare(m, atol=1e-5)


def test_conv_auto_pad_is_refused():
    from converters.errors import UnsupportedError
    from converters.pytorch.convert import generate

    w = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    m = graph_model(
        [node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER")],
        {"x": [1, 2, 5, 5]},
        {"y": None},
        {"w": w},
    )
    with pytest.raises(UnsupportedError, match=r"node 'conv_0' \(Conv\): auto_pad"):
        generate(m)
