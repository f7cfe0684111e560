import numpy as np
import pytest

from tests.pytorch.helpers import compare, graph_model, node


@pytest.mark.parametrize(
    "mode,ctm,scales",
    [
        ("nearest", "asymmetric", [1, 1, 2, 3]),
        ("linear", "half_pixel", [1, 1, 2, 2]),
        ("linear", "align_corners", [1, 1, 1.5, 2]),
        ("linear", "pytorch_half_pixel", [1, 1, 2, 0.5]),
    ],
)
def test_resize(mode, ctm, scales):
    m = graph_model(
        [
            node(
                "Resize",
                ["x", "", "sc"],
                ["y"],
                mode=mode,
                coordinate_transformation_mode=ctm,
                nearest_mode="floor",
            )
        ],
        {"x": [1, 2, 4, 6]},
        {"y": None},
        {"sc": np.array(scales, np.float32)},
    )
    compare(m, atol=1e-5)


def test_cubic_is_refused():
    from converters.errors import UnsupportedError
    from converters.pytorch.convert import generate

    m = graph_model(
        [node("Resize", ["x", "", "sc"], ["y"], mode="cubic")],
        {"x": [1, 2, 4, 6]},
        {"y": None},
        {"sc": np.array([1, 1, 2, 2], np.float32)},
    )
    with pytest.raises(UnsupportedError, match=r"'resize_0' \(Resize\): mode 'cubic'"):
        generate(m)
