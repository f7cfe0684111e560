"""The comparison helpers themselves: a candidate missing an output, or with one too many, fails
(they used to compare only the outputs the candidate happened to have)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare, final_blobs, write_net

TWO_HEADS = """
input: "data"
input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }
layer { name: "a" type: "ReLU" bottom: "data" top: "a" }
layer { name: "b" type: "TanH" bottom: "data" top: "b" }
"""


def test_final_blobs_follow_in_place_layers(tmp_path):
    net = TWO_HEADS + 'layer { name: "s" type: "Sigmoid" bottom: "a" top: "a" }\n'
    net += 'layer { name: "c" type: "AbsVal" bottom: "b" top: "c" }\n'
    proto, _ = write_net(tmp_path, net)
    assert final_blobs(proto) == ["a", "c"]


def test_caffe_helper_fails_when_the_converter_drops_an_output(tmp_path, monkeypatch):
    import converters.caffe.convert as convert

    convert_and_compare(tmp_path, TWO_HEADS)  # the real converter keeps both
    real = convert.caffe_to_onnx

    def drops_b(*args, **kwargs):
        model = real(*args, **kwargs)
        keep = [o for o in model.graph.output if o.name != "b"]
        del model.graph.output[:]
        model.graph.output.extend(keep)
        return model

    monkeypatch.setattr(convert, "caffe_to_onnx", drops_b)
    with pytest.raises(AssertionError, match=r"outputs missing \['b'\], unexpected \[\]"):
        convert_and_compare(tmp_path, TWO_HEADS)


def test_caffe_helper_fails_on_an_output_beyond_the_cut(tmp_path, monkeypatch):
    import converters.caffe.convert as convert

    real = convert.caffe_to_onnx

    def ignores_the_cut(*args, **kwargs):
        return real(*args, **{**kwargs, "outputs": None})

    monkeypatch.setattr(convert, "caffe_to_onnx", ignores_the_cut)
    with pytest.raises(AssertionError, match=r"outputs missing \[\], unexpected \['b'\]"):
        convert_and_compare(tmp_path, TWO_HEADS, outputs=["a"])


def test_onnx2caffe_helper_fails_on_an_extra_caffe_output(tmp_path, monkeypatch):
    import tests.onnx2caffe.helpers as o2c

    model = o2c.make_model([o2c.node("Relu", ["x"], "y")], {"x": (1, 2, 3, 3)}, ["y"])
    o2c.convert_and_compare(tmp_path, model)
    real = o2c.onnx_to_caffe

    def with_extra_top(model, proto, weights):
        real(model, proto, weights)
        with open(proto, "a") as f:
            f.write('layer { name: "extra" type: "TanH" bottom: "x" top: "extra" }\n')

    monkeypatch.setattr(o2c, "onnx_to_caffe", with_extra_top)
    feeds = {"x": np.ones((1, 2, 3, 3), np.float32)}
    with pytest.raises(AssertionError, match=r"unexpected \['extra'\]"):
        o2c.convert_and_compare(tmp_path, model, feeds=feeds)
