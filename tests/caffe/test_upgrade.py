"""V0 (``layers { layer { type: "conv" } }``) and V1 nets upgraded to V2 as Caffe does on load.

References: real Caffe (``tests.caffe.helpers``: it upgrades V0 and V1 nets itself with its own
``upgrade_proto.cpp``, prototxt and weights file alike) and OpenCV DNN, whose Caffe importer
carries a copy of that code; ``convert_and_compare`` checks both where they can run the net.
The V0 nets built here are fed to them exactly as written.
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.caffe.proto import caffe_pb2
from converters.caffe.prototxt import parse_prototxt_text
from converters.caffe.upgrade import upgrade_layers
from converters.errors import ConversionError
from tests.caffe.helpers import caffe_can_run, convert_and_compare, run_caffe, run_ort, write_net

f32 = np.float32

# A 2014-style V0 net: padding layers in front of a conv and a pool (merged into them by the
# upgrade), LRN, grouped conv, concat, innerproduct, dropout, softmax.
V0_NET = """name: "v0net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 15 input_dim: 13
layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2
                 weight_filler { type: "gaussian" std: 0.01 } biasterm: true }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.5 beta: 0.75 }
         bottom: "conv1" top: "norm1" }
layers { layer { name: "pad2" type: "padding" pad: 1 } bottom: "norm1" top: "pad2" }
layers { layer { name: "pool1" type: "pool" pool: MAX kernelsize: 3 stride: 2 }
         bottom: "pad2" top: "pool1" }
layers { layer { name: "conv2" type: "conv" num_output: 6 kernelsize: 1 group: 2 }
         bottom: "pool1" top: "conv2" }
layers { layer { name: "pool2" type: "pool" pool: AVE kernelsize: 3 stride: 1 pad: 1 }
         bottom: "pool1" top: "pool2" }
layers { layer { name: "cat" type: "concat" concat_dim: 1 }
         bottom: "conv2" bottom: "pool2" top: "cat" }
layers { layer { name: "fc" type: "innerproduct" num_output: 5 }
         bottom: "cat" top: "fc" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.5 } bottom: "fc" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""


def _weights():
    rng = np.random.default_rng(5)
    n = rng.standard_normal
    return {
        "conv1": [n((4, 3, 3, 3)).astype(f32), n(4).astype(f32)],
        "conv2": [n((6, 2, 1, 1)).astype(f32), n(6).astype(f32)],
        # conv1 15x13 -> 8x7; pool1 (pad 1, k3 s2, ceil) 5x4; pool2 5x4; cat 10 x 5 x 4.
        "fc": [n((5, 200)).astype(f32), n(5).astype(f32)],
    }


def test_v0_net_upgrades_like_caffe():
    layers = upgrade_layers(parse_prototxt_text(V0_NET), "v0.prototxt")
    names = [(lyr.name, lyr.type) for lyr, _ in layers]
    assert names == [("conv1", "Convolution"), ("relu1", "ReLU"), ("norm1", "LRN"),
                     ("pool1", "Pooling"), ("conv2", "Convolution"), ("pool2", "Pooling"),
                     ("cat", "Concat"), ("fc", "InnerProduct"), ("drop", "Dropout"),
                     ("prob", "Softmax")]  # fmt: skip
    conv1, pool1 = layers[0][0], layers[3][0]
    # The padding layers are gone: their pad moved into the reader, which reads their bottom.
    assert list(conv1.bottom) == ["data"] and list(conv1.convolution_param.pad) == [1]
    assert list(conv1.convolution_param.kernel_size) == [3]
    assert conv1.convolution_param.weight_filler.std == pytest.approx(0.01)
    assert list(pool1.bottom) == ["norm1"] and pool1.pooling_param.pad == 1
    assert layers[2][0].lrn_param.local_size == 3 and layers[6][0].concat_param.concat_dim == 1
    assert layers[4][0].convolution_param.group == 2
    assert [owner for _, owner in layers][:2] == [("layers", 1), ("layers", 2)]


@pytest.mark.parametrize("legacy_blobs", [False, True], ids=["shape", "num-channels-h-w"])
def test_v0_net_matches_opencv(tmp_path, legacy_blobs):
    model, got, _ = convert_and_compare(
        tmp_path, V0_NET, _weights(), legacy_blobs=legacy_blobs, atol=1e-5
    )
    assert got["prob"].shape == (1, 5)
    assert [i.name for i in model.graph.input] == ["data"]
    # A V0 weights file as Caffe wrote it: blobs only inside the nested V0 layer.
    proto = tmp_path / "net.prototxt"
    weights = caffe_pb2.NetParameter.FromString((tmp_path / "net.caffemodel").read_bytes())
    for layer in weights.layers:
        del layer.blobs[:]
    nested = tmp_path / "nested.caffemodel"
    nested.write_bytes(weights.SerializeToString())
    feeds = {"data": np.random.default_rng(6).standard_normal((1, 3, 15, 13)).astype(f32)}
    want = run_ort(model, feeds)["prob"]
    np.testing.assert_array_equal(run_ort(caffe_to_onnx(proto, nested), feeds)["prob"], want)
    # Real Caffe reads that file as it reads 2014 model zoos' weights (OpenCV does not).
    if caffe_can_run(proto):
        got = run_caffe(proto, nested, feeds, ["prob"])["prob"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The build's verifier finds the V0 net's layers and final blob by their V0 names.
    from pipelines.runtimes.opencv import OpenCvCaffeRunner

    runner = OpenCvCaffeRunner(proto, tmp_path / "net.caffemodel")
    assert runner.outputs == ["prob"]
    np.testing.assert_allclose(runner.run(feeds)["prob"], want, rtol=0, atol=1e-5)


def test_v1_net_with_training_fields_matches_opencv(tmp_path):
    net = """name: "v1net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0 param: "w1" param: "b1"
         convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
"""
    w = {"conv1": [np.ones((4, 3, 3, 3), f32) * 0.1, np.arange(4, dtype=f32)]}
    convert_and_compare(tmp_path, net, w)
    train = 'layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv1" include { phase: TRAIN } }'
    layers = upgrade_layers(parse_prototxt_text(net + train), "v1")
    spec = layers[0][0].param
    assert [(s.name, s.lr_mult, s.decay_mult) for s in spec] == [("w1", 1, 1), ("b1", 2, 0)]
    loss = layers[2][0]
    assert loss.type == "SoftmaxWithLoss" and loss.include[0].phase == caffe_pb2.TRAIN


@pytest.mark.parametrize(
    ("layer", "fragment"),
    [('layers { layer { name: "x" type: "fancy" } bottom: "data" top: "x" }',
      "V0 layer 'x' (fancy): unknown V0 layer type"),
     ('layers { layer { name: "x" type: "relu" num_output: 3 } bottom: "data" top: "x" }',
      "V0 layer 'x' (relu): V0 field 'num_output' has no place in this layer type"),
     ('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "data" top: "p" }\n'
      'layers { layer { name: "x" type: "relu" } bottom: "p" top: "x" }',
      "V0 layer 'x' (relu): a padding layer may only feed conv or pool")],
    ids=["unknown-type", "misplaced-field", "padding-into-relu"],
)  # fmt: skip
def test_v0_nets_caffe_cannot_upgrade_are_one_line_errors(tmp_path, layer, fragment):
    text = 'input: "data"\ninput_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4\n' + layer + "\n"
    proto, model = write_net(tmp_path, 'input: "data"\n', None)
    proto.write_text(text)
    with pytest.raises(ConversionError) as err:
        caffe_to_onnx(proto, model)
    msg = str(err.value)
    assert msg.startswith(f"{proto}: {fragment}") and "\n" not in msg, msg
    assert "upgrade refuses it too" in msg
