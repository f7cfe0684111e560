"""eliminate_dropout: inference Dropout removed; kept when training_mode or mask matter."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from converters.passes import run_passes
from tests.passes.helpers import assert_same_outputs, make_model, ops, rng_array


def _model(training=None, mask_used=False, dropout_is_output=False):
    inits = {"W": rng_array((4, 3, 1, 1)), "ratio": np.float32(0.5)}
    d_in = ["c", "ratio"]
    inputs = {"x": [1, 3, 4, 4]}
    if training is not None:
        d_in.append("train")
        if isinstance(training, bool):
            inits["train"] = np.array(training)
        else:
            inputs["train"] = ([], TensorProto.BOOL)
    d_out = ["d", "mask"] if mask_used else ["d"]
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Dropout", d_in, d_out, seed=0),
    ]
    outputs = {"d": [1, 4, 4, 4]}
    if not dropout_is_output:
        nodes.append(helper.make_node("Relu", ["d"], ["y"]))
        outputs = {"y": [1, 4, 4, 4]}
    if mask_used:
        nodes.append(helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Mul", [next(iter(outputs)), "mf"], ["z"]))
        outputs = {"z": [1, 4, 4, 4]}
    return make_model(nodes, inputs, outputs, inits)


def test_removed_with_and_without_training_mode_false():
    for training in (None, False):
        before = _model(training)
        after = run_passes(before, ["eliminate_dropout"])
        assert ops(before)["Dropout"] == 1
        assert ops(after) == {"Conv": 1, "Relu": 1}
        assert_same_outputs(before, after, atol=0)


def test_graph_output_name_is_kept():
    before = _model(dropout_is_output=True)
    after = run_passes(before, ["eliminate_dropout"])
    assert ops(after) == {"Conv": 1}
    assert after.graph.node[0].output[0] == "d"
    assert_same_outputs(before, after, atol=0)


def _refused(model, reason):
    report: list[str] = []
    after = run_passes(model, ["eliminate_dropout"], report)
    assert ops(after) == ops(model)
    assert any(reason in r for r in report), report


def test_not_removed_when_training_mode_is_not_constant_false():
    _refused(_model("input"), "training_mode 'train' is not a constant")
    _refused(_model(True), "training_mode is true")


def test_not_removed_when_mask_is_used():
    model = _model(mask_used=True)
    _refused(model, "its mask output 'mask' is used")
    assert_same_outputs(model, run_passes(model, ["eliminate_dropout"]), atol=0)
