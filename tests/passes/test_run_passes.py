"""The pass registry and the default order."""

from __future__ import annotations

import pytest
from onnx import helper

from converters.errors import ConversionError
from converters.passes import DEFAULT_PASSES, PASSES, run_passes
from tests.passes.helpers import make_model, ops


def test_unknown_pass_lists_known_ones():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1]}, {"y": [1]})
    with pytest.raises(ConversionError) as err:
        run_passes(model, ["fold_batchnorm", "fuse_everything"])
    assert str(err.value) == (
        "unknown optimization pass(es) fuse_everything; known: " + ", ".join(PASSES)
    )


def test_default_list_is_registered_and_input_model_untouched():
    assert set(DEFAULT_PASSES) <= set(PASSES)
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    model = make_model(nodes, {"x": [1]}, {"y": [1]})
    after = run_passes(model)
    assert ops(after) == {"Relu": 1}
    assert ops(model) == {"Identity": 1, "Relu": 1}  # run_passes works on a copy
    assert ops(run_passes(model, [])) == ops(model)
