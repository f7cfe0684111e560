"""The conversion driver (converters/caffe/convert.py): phases, cuts, naming, opsets, IR.

Numbers are compared with OpenCV DNN at atol 1e-5. OpenCV 4.14 ignores ``include``/``exclude``
phase rules (it keeps every layer), so nets with TRAIN-only layers are compared with OpenCV
running the same net with those layers deleted, which is what Caffe builds in the TEST phase
(``Net::FilterNet``).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from converters.caffe.convert import caffe_to_onnx, max_opset
from converters.errors import ConversionError, UnsupportedError
from tests.caffe.helpers import convert_and_compare, run_opencv, run_ort, write_net
from tests.caffe.layer_checks import op_types

HEAD = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 6 dim: 6 }\n'
CONV = (
    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
    "convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }\n"
)
rng = np.random.default_rng(11)
WEIGHTS = {
    "conv": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             rng.standard_normal(4).astype(np.float32)],
    "fc": [rng.standard_normal((5, 36)).astype(np.float32),
           rng.standard_normal(5).astype(np.float32)],
    "prelu": [np.array([0.1, -0.3, 0.5, 2.0], np.float32)],
}  # fmt: skip


def _layer(name: str, type_name: str, bottom: str, top: str, extra: str = "") -> str:
    return (
        f'layer {{ name: "{name}" type: "{type_name}" bottom: "{bottom}" top: "{top}" {extra} }}\n'
    )


def _convert(tmp_path, net: str, **kwargs):
    proto, caffemodel = write_net(tmp_path, net, WEIGHTS)
    return proto, caffemodel, caffe_to_onnx(proto, caffemodel, **kwargs)


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# --- phases -------------------------------------------------------------------------------


def test_phase_rules(tmp_path):
    kept = [
        _layer("relu", "ReLU", "conv", "conv"),
        _layer("tanh", "TanH", "conv", "conv", "include { phase: TEST }"),
        _layer("abs", "AbsVal", "conv", "a", "exclude { phase: TRAIN }"),
        _layer("sig", "Sigmoid", "a", "a", "include { phase: TRAIN } include { phase: TEST }"),
    ]
    skipped = [
        _layer(
            "drop", "Power", "conv", "conv", "include { phase: TRAIN } power_param { scale: 9 }"
        ),
        _layer("neg", "Power", "a", "a", "exclude { phase: TEST } power_param { scale: -1 }"),
        _layer("staged", "Power", "a", "a", 'include { stage: "deploy" } power_param { shift: 5 }'),
        _layer("lvl", "Power", "a", "a", "include { min_level: 1 } power_param { shift: 7 }"),
    ]
    net = HEAD + CONV + kept[0] + skipped[0] + kept[1] + kept[2] + skipped[1] + kept[3]
    net += skipped[2] + skipped[3]
    model = _convert(tmp_path, net)[2]
    assert op_types(model) == ["Conv", "Relu", "Tanh", "Abs", "Sigmoid"]
    feeds = {"data": rng.standard_normal((2, 3, 6, 6)).astype(np.float32)}
    got = run_ort(model, feeds)
    (tmp_path / "test").mkdir()
    ref_proto, ref_model = write_net(tmp_path / "test", HEAD + CONV + "".join(kept), WEIGHTS)
    want = run_opencv(ref_proto, ref_model, feeds, ["a"])
    assert list(got) == ["a"]
    np.testing.assert_allclose(got["a"], want["a"], atol=1e-5)


def test_train_only_layers_do_not_need_weights(tmp_path):
    # A TRAIN-phase InnerProduct with no blobs in the caffemodel: skipped, so never asked for.
    net = HEAD + CONV + _layer("fc", "InnerProduct", "conv", "fc",
                               "include { phase: TRAIN } inner_product_param { num_output: 5 }")  # fmt: skip
    proto, caffemodel = write_net(tmp_path, net, {"conv": WEIGHTS["conv"]})
    model = caffe_to_onnx(proto, caffemodel)
    assert [o.name for o in model.graph.output] == ["conv"]


# --- the outputs cut ----------------------------------------------------------------------

CHAIN = (
    HEAD
    + CONV
    + _layer("relu", "ReLU", "conv", "conv", "relu_param { negative_slope: 0.1 }")
    + _layer("prelu", "PReLU", "conv", "conv")
    + _layer("pool", "Pooling", "conv", "pool", "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
    + _layer("fc", "InnerProduct", "pool", "fc", "inner_product_param { num_output: 5 }")
    + _layer("prob", "Softmax", "fc", "prob")
)  # fmt: skip


def test_outputs_cut_after_in_place_chain_gets_the_final_value(tmp_path):
    model, got, _ = convert_and_compare(tmp_path, CHAIN, WEIGHTS, outputs=["conv"])
    # conv -> LeakyRelu -> PRelu, all in place: "conv" is the PReLU's output; nothing after it.
    assert op_types(model) == ["Conv", "LeakyRelu", "PRelu"]
    assert [o.name for o in model.graph.output] == ["conv"]
    assert model.graph.node[-1].output[0] == "conv"  # OpenCV's "conv" was the PReLU's output
    # PReLU's slope -0.3 flips channel 1's negatives: the final value, not the conv's.
    assert (got["conv"][:, 1] >= 0).all() and (got["conv"][:, 0] < 0).any()


def test_outputs_cut_several_blobs_in_requested_order(tmp_path):
    model, got, _ = convert_and_compare(tmp_path, CHAIN, WEIGHTS, outputs=["fc", "conv", "pool"])
    assert [o.name for o in model.graph.output] == ["fc", "conv", "pool"]
    assert "Softmax" not in op_types(model)
    assert got["fc"].shape == (2, 5) and got["pool"].shape == (2, 4, 3, 3)


def test_outputs_cut_at_an_earlier_in_place_write_is_the_final_value(tmp_path):
    # Asking for "conv" while a later layer still reads it: the graph output is the last write.
    model, got, _ = convert_and_compare(tmp_path, CHAIN, WEIGHTS, outputs=["prob", "conv"])
    assert [o.name for o in model.graph.output] == ["prob", "conv"]
    np.testing.assert_allclose(got["prob"].sum(1), 1.0, atol=1e-6)


def test_outputs_cut_prunes_unneeded_branches(tmp_path):
    net = CHAIN + _layer("side", "Pooling", "data", "side",
                         "pooling_param { pool: AVE kernel_size: 2 stride: 2 }")  # fmt: skip
    model, _, _ = convert_and_compare(tmp_path, net, WEIGHTS, outputs=["side"])
    assert op_types(model) == ["AveragePool"]
    assert [i.name for i in model.graph.initializer] == []


def test_outputs_cut_at_the_input(tmp_path):
    model = _convert(tmp_path, CHAIN, outputs=["data", "fc"])[2]
    assert [o.name for o in model.graph.output] == ["data", "fc"]
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(run_ort(model, {"data": x})["data"], x)


def test_unknown_output_lists_the_blobs(tmp_path):
    proto, caffemodel = write_net(tmp_path, CHAIN, WEIGHTS)
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto, caffemodel, outputs=["fc7"])
    assert _one_line(info) == (
        f"{proto}: requested output 'fc7' is not a blob of this net; "
        "blobs: conv, data, fc, pool, prob"
    )


# --- refusals with a cut hint ---------------------------------------------------------------

SSD_TAIL = (
    HEAD
    + CONV
    + _layer("loc", "Pooling", "conv", "loc", "pooling_param { pool: AVE global_pooling: true }")
    + _layer("conf", "Softmax", "conv", "conf")
    + 'layer { name: "detection_out" type: "Proposal" bottom: "loc" bottom: "conf" '
    'bottom: "data" top: "detection_out" }\n'
)


def test_postprocessing_refusal_names_the_cut(tmp_path):
    proto, caffemodel = write_net(tmp_path, SSD_TAIL, WEIGHTS)
    with pytest.raises(UnsupportedError) as info:
        caffe_to_onnx(proto, caffemodel)
    assert _one_line(info) == (
        f"{proto}: layer 'detection_out' (Proposal) is Faster R-CNN's region proposal "
        "(anchors, decoding and NMS in pixels), which zoomake does not convert; cut the graph "
        "before it with --outputs loc,conf,data (recipe: outputs: [loc, conf, data])"
    )
    # Following the hint converts; OpenCV runs the net without its DetectionOutput.
    model = caffe_to_onnx(proto, caffemodel, outputs=["loc", "conf", "data"])
    assert [o.name for o in model.graph.output] == ["loc", "conf", "data"]
    feeds = {"data": rng.standard_normal((2, 3, 6, 6)).astype(np.float32)}
    got = run_ort(model, feeds)
    (tmp_path / "ref").mkdir()
    ref_proto, ref_model = write_net(
        tmp_path / "ref", SSD_TAIL.split('layer { name: "detection_out')[0], WEIGHTS
    )
    want = run_opencv(ref_proto, ref_model, feeds, ["loc", "conf"])
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)
    np.testing.assert_array_equal(got["data"], feeds["data"])


@pytest.mark.parametrize("loss", ["SoftmaxWithLoss", "EuclideanLoss", "Accuracy"])
def test_training_only_layer_is_refused_with_the_cut_hint(tmp_path, loss):
    net = (
        'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 6 dim: 6 }\n'
        'input: "label"\ninput_shape { dim: 2 dim: 1 }\n'
        + CONV
        + 'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        + _layer("fc", "InnerProduct", "pool", "fc", "inner_product_param { num_output: 5 }")
        + f'layer {{ name: "loss" type: "{loss}" bottom: "fc" bottom: "label" top: "loss" }}\n'
    )
    proto, caffemodel = write_net(tmp_path, net, WEIGHTS)
    with pytest.raises(UnsupportedError) as info:
        caffe_to_onnx(proto, caffemodel)
    msg = _one_line(info)
    assert msg.startswith(f"{proto}: layer 'loss' ({loss}) is a training-only layer; ")
    assert msg.endswith("--outputs fc,label (recipe: outputs: [fc, label])")
    model = caffe_to_onnx(proto, caffemodel, outputs=["fc"])
    assert op_types(model) == ["Conv", "MaxPool", "Flatten", "Gemm"]


def test_v1_softmax_loss_is_refused_with_the_cut_hint(tmp_path):
    net = (
        'input: "data"\ninput_dim: 2\ninput_dim: 36\ninput_dim: 1\ninput_dim: 1\n'
        'layers { name: "fc" type: INNER_PRODUCT bottom: "data" top: "fc" '
        "inner_product_param { num_output: 5 } }\n"
        'layers { name: "loss" type: SOFTMAX_LOSS bottom: "fc" bottom: "label" top: "loss" }\n'
    )
    proto, caffemodel = write_net(tmp_path, net, WEIGHTS)
    with pytest.raises(UnsupportedError) as info:
        caffe_to_onnx(proto, caffemodel)
    assert "layer 'loss' (SoftmaxWithLoss) is a training-only layer" in _one_line(info)
    assert "--outputs fc,label" in _one_line(info)


def test_mixed_layer_and_layers_is_refused(tmp_path):
    net = HEAD + CONV + 'layers { name: "relu" type: RELU bottom: "conv" top: "conv" }\n'
    proto = tmp_path / "net.prototxt"
    proto.write_text(net)
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto)
    assert _one_line(info) == (
        f"{proto}: the net mixes 'layer' and legacy V1 'layers' lists; use one format"
    )


# --- naming -------------------------------------------------------------------------------


def test_graph_outputs_are_named_as_caffe_tops(tmp_path):
    net = (
        HEAD
        + CONV
        + _layer("relu", "ReLU", "conv", "conv")
        + _layer("b1", "Pooling", "conv", "branch1", "pooling_param { pool: MAX kernel_size: 2 }")
        + _layer("b2", "Sigmoid", "conv", "branch2")
        + _layer("b2tanh", "TanH", "branch2", "branch2")
        + _layer("drop", "Dropout", "branch2", "dropped")
        + 'layer { name: "split" type: "Split" bottom: "conv" top: "s1" }\n'
        + _layer("s2", "AbsVal", "conv", "s2")
    )
    model, got, _ = convert_and_compare(tmp_path, net, WEIGHTS)
    # Caffe's net outputs: tops no later layer consumes, in net order.
    assert [o.name for o in model.graph.output] == ["branch1", "dropped", "s1", "s2"]
    assert list(got) == ["branch1", "dropped", "s1", "s2"]
    names = {n.output[0] for n in model.graph.node}
    assert {"conv@conv", "conv", "branch2@b2", "branch2"} <= names
    # Aliases (Dropout, Split) get an Identity so the output carries the Caffe name.
    assert op_types(model).count("Identity") == 2


def test_input_is_named_as_the_caffe_input(tmp_path):
    net = 'input: "img"\ninput_shape { dim: 1 dim: 3 dim: 6 dim: 6 }\n' + CONV.replace(
        'bottom: "data"', 'bottom: "img"'
    )
    model, _, _ = convert_and_compare(tmp_path, net, WEIGHTS)
    assert [i.name for i in model.graph.input] == ["img"]
    assert [o.name for o in model.graph.output] == ["conv"]


# --- opsets and IR versions ---------------------------------------------------------------

OPSETS = sorted({13, 17, max_opset()})


def test_opsets_give_the_same_numbers(tmp_path):
    results = {}
    for opset in OPSETS:
        (tmp_path / str(opset)).mkdir()
        model, got, _ = convert_and_compare(tmp_path / str(opset), CHAIN, WEIGHTS, opset=opset)
        assert model.opset_import[0].version == opset and model.opset_import[0].domain == ""
        results[opset] = got["prob"]
    for opset in OPSETS[1:]:
        np.testing.assert_allclose(results[opset], results[OPSETS[0]], atol=1e-6, rtol=0)


@pytest.mark.parametrize("opset", OPSETS)
def test_ir_version_is_the_minimal_one_and_loads(tmp_path, opset):
    model = _convert(tmp_path, CHAIN, opset=opset)[2]
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    # From the ONNX versioning table: opset 13 shipped with IR 7, opset 17 with IR 8.
    assert model.ir_version == {13: 7, 17: 8}.get(opset, model.ir_version)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    assert run_ort(model, {"data": x})["prob"].shape == (2, 5)
    assert model.producer_name == "zoomake"


@pytest.mark.parametrize("opset", [12, max_opset() + 1])
def test_unsupported_opset_is_refused(tmp_path, opset):
    proto, caffemodel = write_net(tmp_path, CHAIN, WEIGHTS)
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto, caffemodel, opset=opset)
    assert f"opset {opset} is not supported: expected 13..{max_opset()}" in _one_line(info)


def test_input_only_net_is_refused(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(HEAD)
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto)
    assert _one_line(info) == f"{proto}: the net has no layers to convert"


def test_python_proposal_layer_refusal_names_the_code_and_the_cut(tmp_path):
    # py-faster-rcnn's RPN: a Python layer between the RPN heads and ROIPooling
    text = SSD_TAIL.replace(
        'layer { name: "detection_out" type: "Proposal" bottom: "loc" bottom: "conf" '
        'bottom: "data" top: "detection_out" }',
        'layer { name: "proposal" type: "Python" bottom: "loc" bottom: "conf" bottom: "data" '
        'top: "rois" python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" '
        'param_str: "feat_stride: 16" } }',
    )
    assert "ProposalLayer" in text
    proto, caffemodel = write_net(tmp_path, text, WEIGHTS)
    with pytest.raises(UnsupportedError) as info:
        caffe_to_onnx(proto, caffemodel)
    assert _one_line(info) == (
        f"{proto}: layer 'proposal' (Python) is Python code (rpn.proposal_layer.ProposalLayer) "
        "run by pycaffe, which no ONNX graph can hold; cut the graph before it with "
        "--outputs loc,conf,data (recipe: outputs: [loc, conf, data])"
    )
