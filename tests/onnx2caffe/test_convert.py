"""The driver: names, Input layers, blob encoding, refusals, atomic writes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from converters.caffe.prototxt import parse_prototxt
from converters.caffe.weights import read_caffemodel
from converters.errors import ConversionError
from converters.onnx2caffe import onnx_to_caffe
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node

RNG = np.random.default_rng(11)


def _small_net():
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    return make_model([node("Conv", ["data", "w", "b"], "conv1", pads=[1, 1, 1, 1]),
                       node("Relu", ["conv1"], "relu1")], {"data": (1, 3, 6, 6)}, ["relu1"],
                      {"w": w, "b": b}), w, b  # fmt: skip


def test_names_blobs_and_weights(tmp_path):
    model, w, b = _small_net()
    proto, weights = tmp_path / "m.prototxt", tmp_path / "m.caffemodel"
    onnx_to_caffe(model, proto, weights)
    net = parse_prototxt(proto)  # our strict parser: every field is known
    assert [(la.name, la.type, list(la.bottom), list(la.top)) for la in net.layer] == [
        ("data", "Input", [], ["data"]),
        ("conv1", "Convolution", ["data"], ["conv1"]),
        ("relu1", "ReLU", ["conv1"], ["relu1"]),
    ]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 6, 6]
    blobs = read_caffemodel(weights)
    assert set(blobs) == {"conv1"}
    np.testing.assert_array_equal(blobs["conv1"][0].array().reshape(w.shape), w)
    np.testing.assert_array_equal(blobs["conv1"][1].array(), b)
    assert list(blobs["conv1"][0].shape) == [4, 3, 3, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.caffemodel", "m.prototxt"]


def test_large_weights_round_trip_exactly():
    """Blob data goes in as raw packed bytes; check them bit for bit on a 1M-value blob."""
    w = RNG.standard_normal((1000, 1000)).astype(np.float32)
    model = make_model([node("Gemm", ["x", "w"], "y", transB=1)], {"x": (1, 1000)}, ["y"],
                       {"w": w})  # fmt: skip
    from converters.caffe.proto import caffe_pb2

    _, data = build_net(model)
    parsed = caffe_pb2.NetParameter.FromString(data)
    got = np.asarray(parsed.layer[0].blobs[0].data, dtype=np.float32)
    assert got.tobytes() == w.tobytes()


@pytest.mark.parametrize(
    ("op", "inputs", "attrs"),
    [
        ("Einsum", {"a": (2, 3), "b": (3, 4)}, dict(equation="ij,jk->ik")),
    ],
)  # NonMaxSuppression has its own refusal with the cut: tests/onnx2caffe/test_exported_ssd.py
def test_refuses_op_without_caffe_equivalent(tmp_path, op, inputs, attrs):
    model = make_model([node(op, list(inputs), "y", **attrs)], inputs, ["y"])
    with pytest.raises(ConversionError) as err:
        onnx_to_caffe(model, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    msg = str(err.value)
    assert msg.startswith(f"Caffe export: node '{op.lower()}_y' ({op}): no Caffe equivalent; "
                          f"supported ONNX ops: ")  # fmt: skip
    assert "Conv" in msg and "\n" not in msg
    assert not list(tmp_path.iterdir())


def test_refusal_leaves_existing_files_untouched(tmp_path):
    proto, weights = tmp_path / "m.prototxt", tmp_path / "m.caffemodel"
    proto.write_text("old prototxt")
    weights.write_bytes(b"old weights")
    model = make_model([node("Einsum", ["a"], "y", equation="ij->ji")], {"a": (2, 3)}, ["y"])
    with pytest.raises(ConversionError):
        onnx_to_caffe(model, proto, weights)
    assert proto.read_text() == "old prototxt" and weights.read_bytes() == b"old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.caffemodel", "m.prototxt"]


def test_success_replaces_both_files(tmp_path):
    proto, weights = tmp_path / "m.prototxt", tmp_path / "m.caffemodel"
    proto.write_text("old prototxt")
    weights.write_bytes(b"old weights")
    onnx_to_caffe(_small_net()[0], proto, weights)
    assert "Convolution" in proto.read_text() and weights.read_bytes() != b"old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.caffemodel", "m.prototxt"]


def test_dead_branches_are_ignored(tmp_path):
    """An unsupported node nobody needs (a debug output that was cut) is not an error."""
    model = make_model([node("Relu", ["x"], "y"), node("Einsum", ["x"], "dead", equation="ij->ji")],
                       {"x": (2, 3)}, ["y"])  # fmt: skip
    convert_and_compare(tmp_path, model)


def test_refuses_custom_domain():
    model = _small_net()[0]
    model.graph.node[1].domain = "com.microsoft"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(ConversionError, match=r"node 'relu_relu1' \(Relu\): operator domain "
                                              r"'com.microsoft'"):  # fmt: skip
        build_net(model)


def test_refuses_constant_graph_output():
    model = make_model([node("Relu", ["x"], "y"), node("Identity", ["c"], "k")], {"x": (1, 2)},
                       ["y", "k"], {"c": np.ones(2, np.float32)})  # fmt: skip
    with pytest.raises(ConversionError, match="graph output 'k' is a constant"):
        build_net(model)


def test_refuses_dynamic_input():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ConversionError, match=r"input 'x' has no static shape; fix it first "
                                              r"\(--input-shape x=D1,D2,...\)"):  # fmt: skip
        build_net(model)


def test_model_is_not_modified():
    model, _, _ = _small_net()
    before = model.SerializeToString()
    build_net(model)
    assert model.SerializeToString() == before
    onnx.checker.check_model(model)
