"""Identity / Dropout / Cast alias their input; Pad merges into the following Conv or pooling."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx2caffe.convert import build_net
from tests.onnx2caffe.helpers import convert_and_compare, make_model, node


def test_identity_chain_adds_no_layer(tmp_path):
    model = make_model([node("Identity", ["x"], "a"), node("Dropout", ["a"], "b"),
                        node("Relu", ["b"], "y")], {"x": (1, 2, 3, 3)}, ["y"])  # fmt: skip
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer] == ["Input", "ReLU"]
    assert net.layer[1].bottom == ["x"]
    convert_and_compare(tmp_path, model)


def test_aliased_graph_output_gets_its_own_blob(tmp_path):
    """An output that is an alias (Identity) is copied to a blob and layer of its own name."""
    model = make_model([node("Relu", ["x"], "r"), node("Identity", ["r"], "y")],
                       {"x": (1, 2, 3, 3)}, ["y", "r"])  # fmt: skip
    net, _ = build_net(model)
    tops = {layer.name: list(layer.top) for layer in net.layer}
    assert tops["y"] == ["y"] and tops["r"] == ["r"]
    convert_and_compare(tmp_path, model)


def test_output_read_by_later_layers_stays_final(tmp_path):
    """A graph output that other nodes also read: no layer may read the blob of that name,
    so that a Caffe runtime sees it among the net's outputs."""
    model = make_model([node("Relu", ["x"], "r"), node("Sigmoid", ["r"], "y")],
                       {"x": (1, 2, 3, 3)}, ["y", "r"])  # fmt: skip
    net, _ = build_net(model)
    assert not any("r" in layer.bottom for layer in net.layer)
    convert_and_compare(tmp_path, model)


def test_cast_to_float_is_an_alias():
    model = make_model([node("Cast", ["x"], "c", to=1), node("Relu", ["c"], "y")],
                       {"x": (1, 2, 3, 3)}, ["y"])  # fmt: skip
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer] == ["Input", "ReLU"]


def test_refuses_cast_to_int():
    model = make_model([node("Cast", ["x"], "c", to=7), node("Cast", ["c"], "y", to=1)],
                       {"x": (1, 2)}, ["y"])  # fmt: skip
    with pytest.raises(ConversionError, match=r"'cast_c' \(Cast\): cast to INT64"):
        build_net(model)


@pytest.mark.parametrize(
    ("op", "attrs", "pads"),
    [
        ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2]), [1, 1, 1, 1]),
        ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], count_include_pad=0,
                             pads=[0, 0, 1, 1]), [1, 1, 0, 0]),
        ("Conv", dict(strides=[2, 2]), [0, 1, 1, 0]),
    ],
)  # fmt: skip
def test_pad_merges(tmp_path, op, attrs, pads):
    """Pad(zeros) + AveragePool(count_include_pad=0) is what caffe_to_onnx writes for
    Caffe's AVE pooling with pad: it must come back as one Pooling."""
    full = np.array([0, 0, *pads[:2], 0, 0, *pads[2:]], dtype=np.int64)
    inits = {"p": full}
    ins = ["t"]
    if op == "Conv":
        inits["w"] = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)
        ins.append("w")
    model = make_model([node("Pad", ["x", "p"], "t"), node(op, ins, "y", **attrs)],
                       {"x": (1, 2, 7, 8)}, ["y"], inits)  # fmt: skip
    net, _ = build_net(model)
    assert [layer.type for layer in net.layer][:2] == ["Input", "Pooling" if op != "Conv"
                                                        else "Convolution"]  # fmt: skip
    convert_and_compare(tmp_path, model)


def test_refuses_pad_read_by_other_ops():
    model = make_model([node("Pad", ["x", "p"], "t"), node("Relu", ["t"], "y")],
                       {"x": (1, 2, 4, 4)}, ["y"],
                       {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)})  # fmt: skip
    with pytest.raises(ConversionError, match=r"'pad_t' \(Pad\): Caffe has no Pad layer and it "
                                              r"cannot merge into Relu"):  # fmt: skip
        build_net(model)


def test_refuses_zero_pad_before_max_pool():
    """Zeros padded before a max change the result where all inputs are negative."""
    model = make_model([node("Pad", ["x", "p"], "t"),
                        node("MaxPool", ["t"], "y", kernel_shape=[2, 2])],
                       {"x": (1, 2, 4, 4)}, ["y"],
                       {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)})  # fmt: skip
    with pytest.raises(ConversionError, match=r"'maxpool_y' \(MaxPool\): a merged Pad"):
        build_net(model)


def test_refuses_reflect_pad():
    model = make_model([node("Pad", ["x", "p"], "t", mode="reflect"),
                        node("AveragePool", ["t"], "y", kernel_shape=[2, 2])],
                       {"x": (1, 2, 4, 4)}, ["y"],
                       {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)})  # fmt: skip
    with pytest.raises(ConversionError, match=r"'pad_t' \(Pad\): mode 'reflect'"):
        build_net(model)
